"""An in-process Kubernetes API server emulator for tests and demos.

Speaks enough of the real REST protocol (discovery, CRUD, the three patch
types, scale/status/eviction subresources, watches, server-side tables) that
the `kubernetes` Python client and stock `kubectl` work against it unmodified,
with small controllers that make Deployments, ReplicaSets, StatefulSets, HPAs
and PDBs behave like a cluster.
"""

from remediator.testing.kube.emulator import DEFAULT_NAMESPACES, EmulatorError, KubeEmulator
from remediator.testing.kube.errors import ApiError
from remediator.testing.kube.faults import Fault, Faults
from remediator.testing.kube.server import RecordedRequest

__all__ = [
    "DEFAULT_NAMESPACES",
    "ApiError",
    "EmulatorError",
    "Fault",
    "Faults",
    "KubeEmulator",
    "RecordedRequest",
]
