"""Alertmanager's matcher syntax, so playbooks select alerts the way routes and silences do.

`alertname="KafkaLagHigh"`, `severity=~"critical|warning"`, `namespace!="kube-system"`,
`team!~"db.*"`. Regular expressions are anchored at both ends, as in Alertmanager.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(
    r"""^\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|[^"\s,{}]*)\s*$"""
)


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if m is None:
            raise MatcherError(f'not a matcher: {text!r} (expected name="value", =~, != or !~)')
        raw = m["value"]
        value = json.loads(raw) if raw.startswith('"') else raw
        op: Op = m["op"]  # type: ignore[assignment]
        regex = None
        if op in ("=~", "!~"):
            try:
                # Anchored as Alertmanager anchors it (RE2: `$` is the end of the text); in
                # Python that is `fullmatch`, since `$` also matches before a final newline.
                regex = re.compile(f"(?:{value})")
            except re.error as exc:
                raise MatcherError(f"bad regular expression in {text!r}: {exc}") from exc
        return cls(m["name"], op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label matches as the empty string, as in Alertmanager.
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def parse_matchers(spec: str | Iterable[str]) -> tuple[Matcher, ...]:
    """One string (`{a="b", c=~"d"}` or `a="b"`) or a list of single matchers."""
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        parts = _split(text)
    else:
        parts = list(spec)
    matchers = tuple(Matcher.parse(p) for p in parts if p.strip())
    if not matchers:
        raise MatcherError("a playbook needs at least one matcher")
    return matchers


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
