"""An episode's `notifications` is the number of notifications received for it, re-sends
within a minute included (the row is written at most once a minute; the count is not lost),
also after a restart."""

from __future__ import annotations

from tests.admin.helpers import admin_config, call
from tests.conftest import MakeDaemon
from tests.governance.helpers import World, firing, labels, post_and_settle, registry_with


async def _notifications(daemon: object, episode_id: str) -> int:
    status, detail = await call(daemon, "GET", f"/admin/episodes/{episode_id}")  # type: ignore[arg-type]
    assert status == 200
    return int(detail["episode"]["notifications"])


async def test_every_notification_is_counted_re_sends_included(make_daemon: MakeDaemon) -> None:
    registry = registry_with(World())
    daemon = await make_daemon(registry, config=admin_config(mode="shadow"))
    for _ in range(5):  # one firing, then four re-sends within the minute (an HA pair, say)
        await post_and_settle(daemon, firing(labels("orders")))
    [episode] = await daemon.engine.store.list_episodes()
    assert episode.notifications == 5
    assert await _notifications(daemon, episode.id) == 5
    status, listed = await call(daemon, "GET", "/admin/episodes")
    assert status == 200 and listed["episodes"][0]["notifications"] == 5

    await daemon.client.close()  # stops the engine: the count is written, not lost
    again = await make_daemon(registry, config=admin_config(mode="shadow"))
    await post_and_settle(again, firing(labels("orders")))
    assert await _notifications(again, episode.id) == 6
