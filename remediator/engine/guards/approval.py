"""An approval covers exactly the calls the operator saw, nothing else.

Approve mode records the run's `would` actions; when an operator approves, the same run runs
again for real. If the world changed in between and the playbook now wants a different call
(another object, another verb), that call was never approved and is refused. Bodies are not
compared: they may legitimately differ (a timestamp in a restart annotation); the
blast-radius guard still bounds them.
"""

from __future__ import annotations

from collections.abc import Iterable

from remediator.playbook import Action, ActionRefused, RunInfo

NAME = "approval"

CallKey = tuple[str, str, str]  # verb, resource, object


def call_key(verb: str, resource: str, obj: str) -> CallKey:
    return (verb, resource, obj)


class ApprovedCalls:
    name = NAME

    def __init__(self) -> None:
        self._approved: dict[int, frozenset[CallKey]] = {}

    def expect(self, run_id: int, calls: Iterable[CallKey]) -> None:
        self._approved[run_id] = frozenset(calls)

    def forget(self, run_id: int) -> None:
        self._approved.pop(run_id, None)

    async def check(self, run: RunInfo, action: Action) -> None:
        approved = self._approved.get(run.run_id)
        if approved is None:
            return
        if call_key(action.verb, action.resource, action.target.key) not in approved:
            raise ActionRefused(
                NAME,
                f"{action.verb} {action.resource} {action.target.key} is not among the calls "
                "that were approved (the target changed since); approve again",
            )
