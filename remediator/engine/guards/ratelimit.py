"""Rate limits and cool-downs, computed from the durable record so they survive restarts.

The unit counted is an *acting run*: a playbook run that made at least one real action (an
intent, whatever its outcome: succeeded, failed or interrupted). Dry runs (shadow, approve before
approval) and refused actions never count. A run is not counted against itself, so one run may
perform several actions (e.g. set an HPA floor, then annotate) as one remediation; the
blast-radius guard bounds what those actions touch.

Limits, all keyed on the run's target (the workload) or playbook:
- per target per episode: also stops a *different* playbook acting on the same target for the
  same alert episode (the claim only stops the same playbook twice);
- per target, per playbook, all playbooks: at most N acting runs in a sliding window;
- cool-downs: no acting run within N seconds after the last one on the same target/playbook.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from remediator.clock import Clock
from remediator.config import RateLimitSettings, RateWindow, playbook_entry
from remediator.playbook import Action, ActionRefused, RunInfo
from remediator.store import Store

NAME = "rate_limit"


def _refuse_if_exceeded(
    times: list[datetime], now: datetime, window: RateWindow, cooldown: float, what: str
) -> None:
    in_window = [t for t in times if t >= now - timedelta(seconds=window.window_seconds)]
    if len(in_window) >= window.max_actions:
        raise ActionRefused(
            NAME,
            f"{len(in_window)} acting run(s) on {what} in the last {window.window_seconds:g} s "
            f"(limit {window.max_actions})",
        )
    if cooldown > 0 and times and times[-1] > now - timedelta(seconds=cooldown):
        raise ActionRefused(
            NAME,
            f"{what} is cooling down: last acted at {times[-1].isoformat()}, "
            f"cool-down {cooldown:g} s",
        )


class RateLimitGuard:
    name = NAME

    def __init__(self, store: Store, settings: RateLimitSettings, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    async def check(self, run: RunInfo, action: Action) -> None:
        s = self._settings
        target = run.target.key
        same_episode = await self._store.acting_runs(
            episode_id=run.episode_id, target_key=target, exclude_run=run.run_id
        )
        if len(same_episode) >= s.per_target_per_episode:
            raise ActionRefused(
                NAME,
                f"{target} was already acted on in this episode "
                f"(limit {s.per_target_per_episode} per episode)",
            )
        await self._check(
            run, s.per_target, s.target_cooldown_seconds, f"target {target}", target_key=target
        )
        await self._check(
            run,
            playbook_entry(s.playbooks, run.playbook) or s.per_playbook,
            s.playbook_cooldown_seconds,
            f"playbook {run.playbook}",
            playbook=run.playbook,
        )
        await self._check(run, s.all_playbooks, 0.0, "all playbooks")

    async def _check(
        self,
        run: RunInfo,
        window: RateWindow,
        cooldown: float,
        what: str,
        *,
        target_key: str | None = None,
        playbook: str | None = None,
    ) -> None:
        now = self._clock.now()
        since = now - timedelta(seconds=max(window.window_seconds, cooldown))
        times = await self._store.acting_runs(
            since=since, target_key=target_key, playbook=playbook, exclude_run=run.run_id
        )
        _refuse_if_exceeded(times, now, window, cooldown, what)
