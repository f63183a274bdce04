"""One line of `check --online`: what was checked, and whether it holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    subject: str  # "database orders", "kubernetes", "kubernetes namespace shop"
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.subject}: {self.message}"
