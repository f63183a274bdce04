"""`remediator demo` headless: every incident's outcome is printed, and nothing it started
outlives it."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            members.append(int(entry.name))
    return members


async def test_the_demo_plays_every_incident_and_leaves_nothing_behind(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator",
        "demo",
        "--port",
        "0",
        "--exit-after-script",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own session: whatever it starts can be found afterwards
    )
    try:
        async with asyncio.timeout(240):
            out_bytes, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out = out_bytes.decode()
    assert process.returncode == 0, out
    assert re.search(r"export KUBECONFIG=\S+/kubeconfig", out)
    assert re.search(r"http://127\.0\.0\.1:\d+/ui/ +\(token: \S+\)", out)
    outcomes = out.split("What happened:")[1]
    assert (
        "Kafka lag: scaled orders-consumer 3 -> 5, scaled back to 3 after the resolve" in outcomes
    )
    assert "bad rollout: rolled web-api back to web-api:2.0" in outcomes
    assert "hostile labels: nothing touched; 2 refused" in outcomes
    assert "namespace 'kube-system' is denied" in outcomes
    assert "not a valid Kubernetes name" in outcomes
    assert "pool exhaustion: 4 of 4 sessions ended" in outcomes  # PostgreSQL is installed here
    assert re.search(r"storm: breaker OPEN \(.*\); 0 restart\(s\); 1 page\(s\)", outcomes)
    assert "demo stopped" in out
    # Nothing left running: not in its session, and not the PostgreSQL it started.
    assert _session_members(process.pid) == []
    [pg_pid] = [int(p) for p in re.findall(r"PostgreSQL started .*\(pid (\d+)\)", out)]
    assert not os.path.exists(f"/proc/{pg_pid}")  # noqa: ASYNC240 (one stat, no I/O wait)
