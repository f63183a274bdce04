"""Each configured database: can the daemon's role connect, and does it hold every grant the
idle-in-transaction termination needs (all missing grants named at once)?"""

from __future__ import annotations

from remediator.clients.postgres import DatabaseError, missing_grants
from remediator.config import Settings
from remediator.engine.preflight.finding import Finding
from remediator.engine.wiring import postgres_clients


async def check_databases(settings: Settings, *, allow_superuser: bool) -> list[Finding]:
    findings = []
    for name, client in postgres_clients(settings.databases).items():
        subject = f"database {name}"
        try:
            async with client.connect() as conn:
                found = await conn.privileges()
        except DatabaseError as exc:
            findings.append(Finding(subject, False, f"{type(exc).__name__}: {exc}"))
            continue
        problems = missing_grants(found, allow_superuser=allow_superuser)
        if problems:
            findings.append(Finding(subject, False, "; ".join(problems)))
        else:
            findings.append(
                Finding(subject, True, f"role {found.role!r} connects and holds every grant")
            )
    return findings
