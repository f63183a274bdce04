"""An in-process Kubernetes API server emulator for tests and demos.

Speaks enough of the real REST protocol (discovery, CRUD, the three patch
types, scale/status/eviction subresources, watches, server-side tables, an
OpenAPI v3 index) that the `kubernetes` Python client and stock `kubectl`
work against it unmodified, with small controllers that make Deployments,
ReplicaSets, StatefulSets, HPAs and PDBs behave like a cluster. Run
`python -m remediator_testing.kube --kubeconfig PATH` for a standalone one.
"""

from remediator_testing.kube import manifests
from remediator_testing.kube.emulator import DEFAULT_NAMESPACES, EmulatorError, KubeEmulator
from remediator_testing.kube.errors import ApiError
from remediator_testing.kube.faults import Fault, Faults
from remediator_testing.kube.server import RecordedRequest
from remediator_testing.kube.store import WatchEvent

__all__ = [
    "DEFAULT_NAMESPACES",
    "ApiError",
    "EmulatorError",
    "Fault",
    "Faults",
    "KubeEmulator",
    "RecordedRequest",
    "WatchEvent",
    "manifests",
]
