"""Fault injection: make chosen requests fail, stall or drop the connection.

Remediation code must survive a flaky apiserver; rules here let a test say
"the next two PATCHes to this deployment get a 500" or "every GET takes 2 s"
without touching the client. Rules are checked in the order they were added;
the first active match applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from remediator_testing.kube.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """One rule. `times=None` keeps it active forever; `hits` counts applications."""

    path_regex: str
    method: str | None = None
    status: int | None = None
    times: int | None = None
    latency_s: float = 0.0
    reset: bool = False
    retry_after: int | None = None
    message: str = "fault injected by the emulator"
    # The request takes effect, then the answer waits this long (or until `Faults.clear()`):
    # a client that dies meanwhile changed the object without learning the outcome.
    answer_after_s: float = 0.0
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path_regex)
        if self.status is None and not (self.reset or self.latency_s or self.answer_after_s):
            raise ValueError("a fault needs a status, latency_s, answer_after_s or reset")
        if self.status == 429 and self.retry_after is None:
            self.retry_after = 1

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.exhausted or (self.method and self.method.upper() != method):
            return False
        return self._pattern.search(path) is not None

    def error(self) -> ApiError:
        if self.status == 409:
            message = (
                f"Operation cannot be fulfilled: {self.message}: the object has been modified; "
                "please apply your changes to the latest version and try again"
            )
        else:
            message = self.message
        details = {"retryAfterSeconds": self.retry_after} if self.retry_after else None
        return ApiError(self.status or 500, message, details=details, retry_after=self.retry_after)


class Faults:
    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self._released: asyncio.Event | None = None  # set by clear(): held answers go out

    def add(
        self,
        *,
        path_regex: str = ".*",
        method: str | None = None,
        status: int | None = None,
        times: int | None = None,
        latency_s: float = 0.0,
        reset: bool = False,
        retry_after: int | None = None,
        message: str = "fault injected by the emulator",
        answer_after_s: float = 0.0,
    ) -> Fault:
        fault = Fault(
            path_regex=path_regex,
            method=method,
            status=status,
            times=times,
            latency_s=latency_s,
            reset=reset,
            retry_after=retry_after,
            message=message,
            answer_after_s=answer_after_s,
        )
        self.rules.append(fault)
        return fault

    def clear(self) -> None:
        self.rules.clear()
        if self._released is not None:
            self._released.set()
            self._released = None

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.rules:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    async def apply(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fault = self.take(request.method, request.path)
        if fault is None:
            return await handler(request)
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault.reset:
            if request.transport is not None:
                request.transport.abort()
            # Never delivered: aiohttp sees the dead transport and drops the response quietly.
            return web.Response(status=500)
        if fault.status is None:
            response = await handler(request)
            if fault.answer_after_s:
                if self._released is None:
                    self._released = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), fault.answer_after_s)
            return response
        raise fault.error()
