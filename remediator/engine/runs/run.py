"""The action gate behind `Run.act`: guard, record intent, act (or not, in shadow), record outcome.

The intent is durable before the call starts, so a crash between the two leaves an `intent`
row that start-up reconciliation turns into an escalation instead of a blind retry.

Check and intent happen under one admission lock shared by every run: the rate limits are
counted from recorded intents and the concurrency cap from taken slots, so two runs checking at
the same moment cannot both pass a limit that only one of them fits under. Inside it, the
store's admission (`store.admission()`) does the same across replicas sharing the store.

The intent is recorded only while this replica holds its lease (store `record_intent` raises
`Fenced` otherwise, engine/runs/replicas.py): a replica fenced while it was frozen never
makes the call it was about to make.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from remediator.clock import Clock
from remediator.engine.delivery.progress import RunProgress
from remediator.engine.guards.concurrency import Deferred
from remediator.engine.hooks import ActionHooks, Guards
from remediator.playbook import JSON, Action, ActionRefused, Budget, Target
from remediator.playbook.handler_data import handler_data
from remediator.store import Fenced, Store
from remediator.store.records import ActionState

T = TypeVar("T")
REVERT = "revert"  # timer kind: a playbook's revert handler, armed when the episode resolves
REPLICAS = "replicas"  # the refusal of an action on a run another live replica owns
FOLLOW_UP = "follow_up"  # timer kind: a playbook's next step, if its alert still fires then
_MAX_RESULT = 2000


def summarize(value: Any) -> JSON:
    """Keep a call's result small and JSON-safe for the record."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:_MAX_RESULT]
    if isinstance(value, dict | list) and len(repr(value)) <= _MAX_RESULT:
        return value
    return f"{type(value).__name__}: {repr(value)[:_MAX_RESULT]}"


class EngineRun:
    def __init__(
        self,
        *,
        run_id: int,
        episode_id: str,
        playbook: str,
        target: Target,
        dry_run: bool,
        store: Store,
        guards: Guards,
        admission: asyncio.Lock,
        clock: Clock,
        log: Any,
        has_revert: bool = False,
        has_follow_up: bool = False,
        progress: RunProgress | None = None,
        budget: Budget | None = None,
        hooks: ActionHooks | None = None,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._run_id = run_id
        self._episode_id = episode_id
        self._playbook = playbook
        self._target = target
        self._dry_run = dry_run
        self._store = store
        self._guards = guards
        self._admission = admission
        self._clock = clock
        self.log = log
        self.acted = 0
        self.would = 0
        self.evidence_data: dict[str, JSON] = {}
        self.escalations: list[str] = []
        self.done: list[str] = []  # summaries of the real actions that succeeded
        self.notes: list[str] = []  # what the decision must say (e.g. what a cap left undone)
        self._budget = budget or Budget()
        self._has_revert = has_revert
        self._has_follow_up = has_follow_up
        self.progress = progress or RunProgress.off()
        self._hooks = hooks
        # Asked when the store refuses an intent as fenced: is this replica still live?
        self._confirm = confirm

    @property
    def run_id(self) -> int:
        return self._run_id

    @property
    def episode_id(self) -> str:
        return self._episode_id

    @property
    def playbook(self) -> str:
        return self._playbook

    @property
    def target(self) -> Target:
        return self._target

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    @property
    def budget(self) -> Budget:
        return self._budget

    async def allowance(self, key: str) -> int | None:
        return await self._guards.allowance(self, key)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.evidence_data["notes"] = list(self.notes)

    async def act(self, action: Action, call: Callable[[], Awaitable[T]]) -> T | None:
        while True:
            try:
                return await self._admit_and_call(action, call)
            except Deferred as deferred:
                # The cap on actions in flight is full: wait outside the admission lock (others
                # may pass, dry runs and refusals), then every guard is asked again.
                self.log.info("action deferred", action=action.summary, reason=str(deferred))
                await deferred.room()

    async def _admit_and_call(self, action: Action, call: Callable[[], Awaitable[T]]) -> T | None:
        async with contextlib.AsyncExitStack() as in_flight:
            async with self._admission, self._store.admission():
                try:
                    await self._guards.check(self, action)
                except ActionRefused as refused:
                    action_id = await self._intent(action)
                    await self._store.record_outcome(
                        action_id, ActionState.REFUSED, error=str(refused)
                    )
                    raise
                if not self._dry_run:
                    # What the run found and planned so far survives a crash during the call
                    # (engine/runs/recovery.py reports it with what was and was not done).
                    await self._store.save_evidence(self._run_id, self.evidence_data)
                action_id = await self._intent(action)
                if self._dry_run:
                    self.would += 1
                    self.log.info(
                        "would act", action=action.summary, verb=action.verb, body=action.body
                    )
                    return None
                if self._hooks is not None:
                    await self._hooks.before(self, action)
                await in_flight.enter_async_context(self._guards.acting(self, action))
            self.progress.intent(action)
            result = await self._call(action, action_id, call)
        return result

    async def _call(self, action: Action, action_id: int, call: Callable[[], Awaitable[T]]) -> T:
        self.log.info("acting", action=action.summary, verb=action.verb)
        try:
            result = await call()
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            # Shielded: a timeout cancelling the run must not also lose the outcome.
            await asyncio.shield(
                self._store.record_outcome(action_id, ActionState.FAILED, error=error)
            )
            self.progress.outcome(action, ActionState.FAILED, error)
            raise
        await asyncio.shield(
            self._store.record_outcome(action_id, ActionState.SUCCEEDED, result=summarize(result))
        )
        if self._hooks is not None:
            await asyncio.shield(self._hooks.succeeded(self, action, action_id))
        self.progress.outcome(action, ActionState.SUCCEEDED)
        self.acted += 1
        self.done.append(action.summary)
        return result

    async def _intent(self, action: Action) -> int:
        try:
            return await self._record_intent(action)
        except Fenced as fenced:
            # A lease past only because this process was slow (not fenced yet) is renewed by
            # the confirmation, and the intent may go; a fenced replica stops here.
            self.log.error("intent refused", action=action.summary, reason=str(fenced))
            if self._confirm is None or not await self._confirm():
                raise
        try:
            return await self._record_intent(action)
        except Fenced as fenced:
            # Live, and still refused: the run is another live replica's (a later step came
            # due while that replica still runs it). Not this replica's to act on: refused,
            # and said like any refusal, while this replica goes on.
            raise ActionRefused(REPLICAS, str(fenced)) from fenced

    async def _record_intent(self, action: Action) -> int:
        return await self._store.record_intent(
            self._run_id,
            self._episode_id,
            verb=action.verb,
            resource=action.resource,
            obj=action.target.key,
            summary=action.summary,
            body=action.body,
            change=dict(action.change),
            dry_run=self._dry_run,
        )

    async def record_call(self, verb: str, resource: str, obj: str, body: JSON = None) -> None:
        await self._store.record_call(self._run_id, self._episode_id, verb, resource, obj, body)

    def evidence(self, key: str, value: JSON) -> None:
        self.evidence_data[key] = value

    def escalate(self, reason: str) -> None:
        self.escalations.append(reason)

    async def follow_up(self, delay_seconds: float, data: JSON | BaseModel) -> None:
        if not self._has_follow_up:
            raise TypeError(f"playbook {self._playbook} has no follow_up= handler to call later")
        await self._store.add_timer(
            FOLLOW_UP,
            self._episode_id,
            due_at=self._clock.now() + timedelta(seconds=delay_seconds),
            run_id=self._run_id,
            playbook=self._playbook,
            payload={
                "data": handler_data(data),
                "target": self._target.key,
                "dry_run": self._dry_run,
            },
        )

    async def on_resolved(self, delay_seconds: float, data: JSON | BaseModel) -> None:
        if not self._has_revert:
            raise TypeError(f"playbook {self._playbook} has no revert= handler to call later")
        await self._store.add_timer(
            REVERT,
            self._episode_id,
            due_at=None,
            run_id=self._run_id,
            playbook=self._playbook,
            delay_seconds=delay_seconds,
            # Held until the run is known to have changed something: when it ends `acted`, or
            # when recovery finds an interrupted change applied (engine/runs/recovery.py).
            held=True,
            payload={
                "data": handler_data(data),
                "target": self._target.key,
                "dry_run": self._dry_run,
                "delay_seconds": delay_seconds,  # to defer it again (Pipeline.revert)
            },
        )
