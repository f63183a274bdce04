"""The facts an `Action.change` carries, named once so playbooks and guards agree on them.

The blast-radius guard reads these keys immediately before every action; a playbook that
leaves them out cannot be bounded, so every playbook that scales, deletes pods or terminates
sessions must set the matching key. The namespace is not a change key: it is
`Action.target.namespace` (and the run's target namespace), checked against the allow and
deny lists.

    from remediator.playbook.changes import PODS, REPLICAS, SESSIONS, WORKLOAD_REPLICAS

    Action("patch", "deployments/scale", target, "scale shop/api 3 -> 5",
           body={"spec": {"replicas": 5}}, change={REPLICAS: [3, 5]})
    Action("create", "pods/eviction", pod, "evict shop/api-7d9f-x2", change={PODS: 1})
    Action("create", "pods/eviction", pod, "evict shop/redis-2",
           change={PODS: 1, WORKLOAD_REPLICAS: 3})
    Action("terminate", "pg_stat_activity", db, "terminate 4 idle sessions",
           change={SESSIONS: 4})
"""

from __future__ import annotations

from typing import Final

REPLICAS: Final = "replicas"
"""`[before, after]`: a workload's replica count before and after the change (integers).
Checked against `guards.blast_radius.max_replicas`, `min_replicas` and `max_scale_step`."""

PODS: Final = "pods"
"""How many pods the action deletes or evicts (integer > 0). Summed over the episode per
workload and checked against the playbook's budget (`budget.Budget`, default one) under the
ceiling `guards.blast_radius.max_pods_per_episode`."""

SESSIONS: Final = "sessions"
"""How many database sessions the action terminates (integer > 0). Summed over the run and
checked against the ceiling `guards.blast_radius.max_sessions_per_run` (ask
`run.allowance(SESSIONS)` first, to take no more than is left)."""

WORKLOAD_REPLICAS: Final = "workload_replicas"
"""With `PODS`: how many replicas the workload whose pod is evicted has, as the run read it.
Bounds a playbook whose budget is one pod per replica (`budget.PER_REPLICA`); the ceiling
`guards.blast_radius.max_pods_per_episode` holds whatever it says."""

COUNTED: Final = (PODS, SESSIONS)
"""Keys whose value is a count of things touched: zero or negative means an unbounded or empty
selection ("zero does not mean all") and is refused."""
