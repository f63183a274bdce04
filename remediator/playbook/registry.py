"""The playbook decorator and the typed registry it fills.

A decorator stores a frozen `PlaybookSpec` and returns the function unchanged. Loading happens
with a registry made current (`Registry.loading`), so the same playbook file can be loaded into
a fresh registry per test, and `registry=` can be passed explicitly.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from remediator.playbook.access import Rule
from remediator.playbook.budget import Budget
from remediator.playbook.matchers import Matcher, all_match, parse_matchers
from remediator.playbook.targets import Resolver

PlaybookFn = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=PlaybookFn)

# What the engine passes every playbook (and `data` to revert and follow-up handlers); any other
# keyword a playbook requires names a client (`kube`, `postgres`, ...).
CONTEXT_KEYWORDS = frozenset(
    {"alert", "episode", "params", "target", "run", "log", "mode", "dry_run", "data"}
)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Verify:
    """How success is proven after the bake time. `promql` empty means: the alert's own
    expression (from its generatorURL) must return nothing."""

    bake: timedelta = timedelta(minutes=2)  # `playbooks.<name>.verify.bake_seconds` overrides
    promql: str = ""
    # The query's result proves success when it is empty (the default) or non-empty.
    success_when_empty: bool = True
    # With `promql`, while the alert itself still fires after the bake: a query whose series
    # show clear progress (e.g. falling lag). Without any, an alert still firing is not fixed.
    progress: str = ""


@dataclass(frozen=True)
class PlaybookSpec:
    name: str
    fn: PlaybookFn
    matchers: tuple[Matcher, ...]
    target: Resolver
    params: type[BaseModel] = NoParams
    priority: int = 0
    verify: Verify | None = field(default_factory=Verify)
    description: str = ""
    source: str = ""
    # Called (with the usual keywords plus `data`) after the episode resolves, for changes the
    # playbook asked to undo with `run.on_resolved` (e.g. return to the replicas it found).
    revert: PlaybookFn | None = None
    # Called (with the usual keywords plus `data`) when a `run.follow_up` comes due while the
    # alert still fires: the runbook's next step (e.g. restart the application).
    follow_up: PlaybookFn | None = None
    # The Kubernetes RBAC rules the playbook and its handlers need (`access.uses`); None: not
    # declared, which `remediator rbac` reports for a playbook that takes `kube`.
    access: frozenset[Rule] | None = None
    # What one episode of its procedure needs to touch (pods of its target), under the guards'
    # ceilings: see `playbook/budget.py`.
    budget: Budget = field(default_factory=Budget)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all_match(self.matchers, labels)

    @property
    def needs(self) -> frozenset[str]:
        """The clients the playbook cannot run without: its keyword-only parameters without a
        default that are not part of the run's context. A default (`kube=None`) makes one
        optional."""
        return frozenset(
            p.name
            for p in inspect.signature(self.fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
            and p.default is inspect.Parameter.empty
            and p.name not in CONTEXT_KEYWORDS
        )

    @property
    def clients(self) -> frozenset[str]:
        """Every client the playbook or its handlers can take, required or optional."""
        return frozenset(
            p.name
            for fn in (self.fn, self.revert, self.follow_up)
            if fn is not None
            for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in CONTEXT_KEYWORDS
        )


class PlaybookError(ValueError):
    pass


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, PlaybookSpec] = {}

    def add(self, spec: PlaybookSpec) -> None:
        existing = self._specs.get(spec.name)
        if existing is not None:
            raise PlaybookError(
                f"playbook {spec.name!r} is defined twice ({existing.source} and {spec.source})"
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> PlaybookSpec | None:
        return self._specs.get(name)

    def __iter__(self) -> Iterator[PlaybookSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def match(self, labels: Mapping[str, str]) -> list[PlaybookSpec]:
        """Matching playbooks, highest priority first, then by name (deterministic)."""
        found = [s for s in self._specs.values() if s.matches(labels)]
        return sorted(found, key=lambda s: (-s.priority, s.name))

    @contextmanager
    def loading(self) -> Iterator[Registry]:
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


_DEFAULT = Registry()
_CURRENT: ContextVar[Registry] = ContextVar("remediator_registry", default=_DEFAULT)


def playbook(
    *,
    match: str | Iterable[str],
    target: Resolver,
    name: str | None = None,
    params: type[BaseModel] = NoParams,
    priority: int = 0,
    verify: Verify | None = Verify(),
    revert: PlaybookFn | None = None,
    follow_up: PlaybookFn | None = None,
    access: Iterable[Rule] | None = None,
    budget: Budget | None = None,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Register an async function as a playbook for the alerts `match` selects."""
    matchers = parse_matchers(match)

    def decorator(fn: F) -> F:
        checked: object = fn  # keep `fn` typed as F: the check below would narrow it
        if not inspect.iscoroutinefunction(checked):
            raise PlaybookError(f"playbook {fn.__qualname__} must be an `async def` function")
        accepts_kwargs = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(fn).parameters.values()
        )
        if not accepts_kwargs:
            raise PlaybookError(
                f"playbook {fn.__qualname__} must accept **_ so new context does not break it"
            )
        spec = PlaybookSpec(
            name=name or fn.__name__.replace("_", "-"),
            fn=fn,
            matchers=matchers,
            target=target,
            params=params,
            priority=priority,
            verify=verify,
            description=inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0],
            source=inspect.getsourcefile(fn) or "",
            revert=revert,
            follow_up=follow_up,
            access=frozenset(access) if access is not None else None,
            budget=budget or Budget(),
        )
        (registry if registry is not None else _CURRENT.get()).add(spec)
        return fn

    return decorator
