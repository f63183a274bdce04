"""The words of decisions made without a run, in one place (the digester decides some on
arrival, the pipeline the same ones after dispatch)."""

from __future__ import annotations

NO_PLAYBOOK = "no enabled playbook matches"
RESOLVED = "the alert resolved; nothing is done"
