"""Re-sends counted in memory between touches of the episode row (both backends' digest).

Re-sends come in floods (every group, every peer, every repeat_interval) and each write of an
episode row is a random page, so a re-send touches the row at most once per RESEND_TOUCH; the
rest is counted here, added by reads, and written by the next touch, the resolve or close.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from remediator.store.records import EpisodeRecord

RESEND_TOUCH = timedelta(seconds=60)


class Resends:
    """Re-sends counted but not written yet, by episode: the row is touched at most once per
    RESEND_TOUCH, and that touch adds them (reads add them too; close writes the rest)."""

    def __init__(self) -> None:
        self.unsaved: dict[str, int] = {}

    def counted(self, episode: EpisodeRecord) -> EpisodeRecord:
        """With the re-sends received since the row was last touched."""
        unsaved = self.unsaved.get(episode.id)
        if not unsaved:
            return episode
        return dataclasses.replace(episode, notifications=episode.notifications + unsaved)
