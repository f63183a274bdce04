"""Every label that becomes a Kubernetes name is matched in full, by ASCII rules: a trailing
newline, a control character, a Unicode look-alike or a path separator is refused as an
invalid name before any request is made, and the emulator never sees it."""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from remediator.playbook import ResolveScope, TargetError, targets
from remediator.playbook.matchers import Matcher
from tests.kubernetes.helpers import Cluster

NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-.")
VALID = ["kube-system", "shop", "api", "ingestion-engine", "redis", "api-7d9f8c6b5-x2x7k"]
CONTROL = [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"]
LOOK_ALIKES = [
    "\u0435",  # Cyrillic small ie
    "\u0430",  # Cyrillic small a
    "\u043e",  # Cyrillic small o
    "\u0455",  # Cyrillic small dze
    "\u0456",  # Cyrillic small i
    "\uff45",  # fullwidth e
    "\uff41",  # fullwidth a
    "\uff10",  # fullwidth 0
    "\uff0d",  # fullwidth hyphen-minus
    "\uff0e",  # fullwidth full stop
    "\u2010",  # hyphen
    "\u2212",  # minus sign
    "\u00a0",  # no-break space
    "\u200b",  # zero-width space
    "\u0131",  # dotless i
    "\u212a",  # Kelvin sign (lower-cases to k)
]
SEPARATORS = ["/", "\\", "..", "../", "/..", "%2F", "%0A", ":", "?", "#", " ", "*", ","]
INJECTED = CONTROL + LOOK_ALIKES + SEPARATORS


@st.composite
def hostile(draw: st.DrawFn) -> str:
    """A valid name with something a name must not contain put somewhere into it (at the
    end included: the trailing newline that `re.match(...$)` lets through)."""
    base = draw(st.sampled_from(VALID))
    where = draw(st.integers(0, len(base)))
    return base[:where] + draw(st.sampled_from(INJECTED)) + base[where:]


RESOLVERS = {
    "namespace": lambda value: targets.deployment()(
        {"namespace": value, "deployment": "api"}, ResolveScope()
    ),
    "deployment": lambda value: targets.deployment()(
        {"namespace": "shop", "deployment": value}, ResolveScope()
    ),
    "statefulset": lambda value: targets.statefulset()(
        {"namespace": "shop", "statefulset": value}, ResolveScope()
    ),
    "pod": lambda value: targets.deployment_of_pod()(
        {"namespace": "shop", "pod": value}, ResolveScope()
    ),
}


@pytest.mark.parametrize("label", RESOLVERS)
@settings(max_examples=300, deadline=None)
@given(value=hostile())
@example(value="kube-system\n")
@example(value="ingestion-engine\n")
def test_every_hostile_label_is_refused_as_an_invalid_name(label: str, value: str) -> None:
    with pytest.raises(TargetError, match=f"label '{label}' is not a valid Kubernetes name"):
        RESOLVERS[label](value)


@pytest.mark.parametrize("label", RESOLVERS)
@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=70))
def test_only_ascii_name_characters_are_ever_accepted(label: str, value: str) -> None:
    """Whatever the text: a value accepted as a name is made of a-z, 0-9, `-` and `.`
    only, and starts and ends with a letter or digit."""
    try:
        target = RESOLVERS[label](value)
    except TargetError:
        return
    for name in (target.name, target.namespace or "", *target.extra.values()):
        assert set(name) <= NAME_CHARS, name
        assert name[:1].isalnum() and name[-1:].isalnum(), name
    assert value in (target.name, target.namespace, target.extra.get("pod"))


@settings(max_examples=200, deadline=None)
@given(value=hostile())
def test_a_regex_matcher_matches_the_whole_value(value: str) -> None:
    """As Alertmanager anchors `=~` (RE2: `$` is the end of the text), a label with anything
    after the matched name does not match."""
    matcher = Matcher.parse('namespace=~"kube-system|shop"')
    assert not matcher.matches({"namespace": "kube-system\n"})
    assert matcher.matches({"namespace": value}) is (value in ("kube-system", "shop"))


@dataclass(frozen=True)
class Case:
    module: str
    alertname: str
    label: str  # the label naming the object
    name: str  # a valid value for it


CASES = [
    Case("restart_on_down", "ServiceDown", "deployment", "ingestion-engine"),
    Case("statefulset_rolling_restart", "RedisCacheDown", "statefulset", "redis"),
    Case("restart_crashloop", "PodCrashLooping", "pod", "api-7d9f8c6b5-x2x7k"),
]
# Refused alerts would otherwise open the storm breaker (a refusal burst), which holds them
# instead of refusing each with its reason.
NO_STORM = {"storm": {"refusals": None, "distinct_targets": 10_000}}
_episode = itertools.count(1)


@pytest.mark.parametrize("which", ["namespace", "object"])
@pytest.mark.parametrize("case", CASES, ids=[c.module for c in CASES])
@settings(
    max_examples=40,
    deadline=None,
    # One daemon for all the examples: each alert is a new episode of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=hostile())
@example(value="kube-system\n")
@example(value="ingestion-engine\n")
async def test_the_emulator_never_sees_a_hostile_label(
    cluster: Cluster, case: Case, which: str, value: str
) -> None:
    if cluster.daemon is None:
        await cluster.start(case.module, guards=NO_STORM)
    cluster.emu.requests.clear()
    label = "namespace" if which == "namespace" else case.label
    labels = {
        "alertname": case.alertname,
        "namespace": "shop",
        case.label: case.name,
        "severity": "warning",
        label: value,
    }

    outcome = await cluster.fire(labels, minutes=next(_episode))

    assert outcome.runs == []
    [refusal] = [d for d in outcome.decisions if d.kind == "refused"]
    assert refusal.reason.startswith(f"no valid target: label '{label}' is not a valid Kubernetes")
    assert cluster.emu.requests == []
