"""Retrying transient Kubernetes failures, and nothing else.

5xx, 429 (not a PodDisruptionBudget's), timeouts and dropped connections are retried with a
capped exponential backoff with full jitter (many replicas retrying the same sick API server
must not do it in step), honouring `Retry-After` up to a cap. Everything else (403, 404, 422, a
budget refusing an eviction) fails at once: retrying cannot change the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from remediator.clients.kube.errors import KubeError, KubeUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 30.0

    def wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self.initial_backoff_seconds, max=self.max_backoff_seconds
        )(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, KubeError) and error.retry_after is not None:
            return min(max(backoff, error.retry_after), self.max_retry_after_seconds)
        return backoff


def _transient(error: BaseException) -> bool:
    return isinstance(error, KubeError) and error.transient


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`, retrying transient `KubeError`s; the last one becomes `KubeUnavailable`."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=policy.wait,
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except KubeError as error:
        if not error.transient:
            raise
        raise KubeUnavailable(
            error.status,
            error.reason,
            f"{error.message} (gave up after {policy.attempts} attempt(s))",
            what=error.what,
            retry_after=error.retry_after,
            causes=error.causes,
        ) from None
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
