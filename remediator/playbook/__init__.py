"""The public surface for playbook authors: the decorator, targets, the action gate.

from remediator.playbook import Action, Run, playbook, targets

@playbook(match='alertname="KafkaLagHigh"', target=targets.deployment(), params=MyParams)
async def scale_on_lag(*, alert, params, run, kube, log, **_): ...
"""

from remediator.alertmanager import Alert  # what a playbook receives as `alert`
from remediator.playbook import targets
from remediator.playbook.budget import PER_REPLICA, Budget, Ceiling
from remediator.playbook.context import (
    JSON,
    Action,
    ActionRefused,
    ClientFactory,
    ReadsBack,
    Run,
    RunInfo,
)
from remediator.playbook.loading import LoadProblem, load_directories, load_file
from remediator.playbook.matchers import Matcher, MatcherError, parse_matchers
from remediator.playbook.registry import (
    NoParams,
    PlaybookError,
    PlaybookSpec,
    Registry,
    Verify,
    playbook,
)
from remediator.playbook.targets import ResolveScope, Target, TargetError

__all__ = [
    "JSON",
    "PER_REPLICA",
    "Action",
    "ActionRefused",
    "Alert",
    "Budget",
    "Ceiling",
    "ClientFactory",
    "LoadProblem",
    "Matcher",
    "MatcherError",
    "NoParams",
    "PlaybookError",
    "PlaybookSpec",
    "ReadsBack",
    "Registry",
    "ResolveScope",
    "Run",
    "RunInfo",
    "Target",
    "TargetError",
    "Verify",
    "load_directories",
    "load_file",
    "parse_matchers",
    "playbook",
    "targets",
]
