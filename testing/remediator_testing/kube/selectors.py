"""Label and field selectors, in both their wire forms.

Selectors arrive as query strings (`app=api,tier in (web),!legacy`) from list
and watch calls, and as `LabelSelector` objects (`matchLabels` plus
`matchExpressions`) inside Deployments, PDBs and the like; both compile to the
same requirement list so matching behaves identically wherever it happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from remediator_testing.kube import errors

JsonObj = dict[str, Any]

_SET_RE = re.compile(r"^\s*(!?)\s*([\w./-]+)\s+(in|notin)\s*\((.*)\)\s*$")
# The field labels the apiserver indexes for the types served here (pods and events).
_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "status.phase",
    "spec.nodeName",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
}


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


Selector = list[Requirement]


def _split_terms(text: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(text: str) -> Selector:
    selector: Selector = []
    for term in _split_terms(text):
        set_match = _SET_RE.match(term)
        if set_match:
            values = frozenset(v.strip() for v in set_match.group(4).split(",") if v.strip())
            selector.append(Requirement(set_match.group(2), set_match.group(3), values))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            selector.append(Requirement(key.strip(), "notin", frozenset({value.strip()})))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            selector.append(Requirement(key.strip(), "in", frozenset({value.strip()})))
        elif term.startswith("!"):
            selector.append(Requirement(term[1:].strip(), "!exists"))
        elif re.fullmatch(r"[\w./-]+", term):
            selector.append(Requirement(term, "exists"))
        else:
            raise errors.bad_request(
                f'unable to parse requirement: invalid label selector "{term}"'
            )
    return selector


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def from_label_selector(spec: JsonObj | None) -> Selector:
    """Compile a LabelSelector object; a missing selector matches nothing, as in the API."""
    if spec is None:
        return [Requirement("", "in", frozenset())]
    selector = [
        Requirement(k, "in", frozenset({v}))
        for k, v in sorted((spec.get("matchLabels") or {}).items())
    ]
    for expr in spec.get("matchExpressions") or []:
        selector.append(
            Requirement(
                expr["key"], _EXPR_OPS[expr["operator"]], frozenset(expr.get("values") or [])
            )
        )
    return selector


def format_selector(spec: JsonObj) -> str:
    """The string form that Scale.status.selector carries."""
    parts = [f"{k}={v}" for k, v in sorted((spec.get("matchLabels") or {}).items())]
    for expr in spec.get("matchExpressions") or []:
        op = _EXPR_OPS[expr["operator"]]
        values = ",".join(sorted(expr.get("values") or []))
        if op == "exists":
            parts.append(expr["key"])
        elif op == "!exists":
            parts.append(f"!{expr['key']}")
        else:
            parts.append(f"{expr['key']} {op} ({values})")
    return ",".join(parts)


def matches(selector: Selector, labels: dict[str, str] | None) -> bool:
    return all(req.matches(labels or {}) for req in selector)


def labels_of(obj: JsonObj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


FieldSelector = list[tuple[str, bool, str]]


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `a=b,c!=d` into (field, wanted_equal, value) triples."""
    selector: FieldSelector = []
    for term in _split_terms(text):
        if "!=" in term:
            field, value = term.split("!=", 1)
            equal = False
        elif "=" in term:
            field, value = term.replace("==", "=").split("=", 1)
            equal = True
        else:
            raise errors.bad_request(f'invalid field selector: "{term}"')
        field = field.strip()
        if field not in _FIELDS:
            raise errors.bad_request(f'field label not supported: "{field}"')
        selector.append((field, equal, value.strip()))
    return selector


def field_matches(selector: FieldSelector, obj: JsonObj) -> bool:
    for field, equal, value in selector:
        current: Any = obj
        for part in field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if ((current or "") == value) != equal:
            return False
    return True
