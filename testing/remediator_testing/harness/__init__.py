"""An end-to-end harness: real Prometheus and Alertmanager, the daemon, and a world that reacts.

`Stack` runs the whole loop on loopback (see `stack`), `harness.config` the documented
rewrites of `alert_rules/` and the example Alertmanager config that make it run in seconds,
`world` the models that move metrics like the real system, and `scenarios` the end-to-end
scenarios that `tests/e2e` asserts on and `bench/e2e.py` times.
"""

from remediator_testing.harness.config import alertmanager_config, scaled_rules
from remediator_testing.harness.stack import Figures, Stack
from remediator_testing.harness.world import (
    AppTargets,
    ConsumerLag,
    HungPods,
    KubeStateMetrics,
    PoolSessions,
)

__all__ = [
    "AppTargets",
    "ConsumerLag",
    "Figures",
    "HungPods",
    "KubeStateMetrics",
    "PoolSessions",
    "Stack",
    "alertmanager_config",
    "scaled_rules",
]
