"""An aiohttp application served on 127.0.0.1 on a port the OS picks: the base of our fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from aiohttp import web

from remediator_testing.servers import LOOPBACK


class LoopbackApp(ABC):
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @abstractmethod
    def build_app(self) -> web.Application:
        """The routes this fake serves."""

    async def start(self) -> Self:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        runner = web.AppRunner(self.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._port
