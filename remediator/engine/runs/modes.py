"""The one owner of playbook modes: the configuration's, and the operators' overrides on top.

Overrides (admin API, Slack, the web page) are durable in the governance record; `Governance`
writes them there and here, and everything that asks "in what mode does this playbook run"
asks this object.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from remediator.config import Mode, Settings


class PlaybookModes:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._overrides: dict[str, Mode] = {}

    def of(self, playbook: str) -> Mode:
        """The mode the next run of `playbook` runs in."""
        return self._overrides.get(playbook) or self._settings.mode_of(playbook)

    def configured(self, playbook: str) -> Mode:
        return self._settings.mode_of(playbook)

    def overridden(self, playbook: str) -> bool:
        return playbook in self._overrides

    def set(self, playbook: str, mode: Mode | None) -> Mode:
        """Override (None: back to the configured mode); returns the mode now in effect."""
        if mode is None:
            self._overrides.pop(playbook, None)
        else:
            self._overrides[playbook] = mode
        return self.of(playbook)

    def load(self, overrides: Mapping[str, str], known: Collection[str]) -> None:
        """The overrides in the record, for playbooks still loaded: at start (those set
        before a restart), and before each run when replicas share the store (another
        replica's admin API may have changed them)."""
        self._overrides = {p: Mode(mode) for p, mode in overrides.items() if p in known}
