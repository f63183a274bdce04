"""End-to-end figures: how long from a rule firing in Prometheus to the daemon's action, and
from the action to the alert resolving, on the real loop.

    .venv/bin/python bench/e2e.py [scenario ...]     # default: all of them

Each scenario starts, on 127.0.0.1, a metrics exporter the scenario drives, real Prometheus
(loading a copy of `alert_rules/` with every duration divided by 60) and Alertmanager
(loading `alert_rules/alertmanager.example.yml` with loopback receivers and 1 s timings), the
daemon in auto mode, and the Kubernetes emulator or a real PostgreSQL; see
`testing/remediator_testing/harness/`. The same scenarios run as `tests/e2e`. Every process it
starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from remediator.logs import configure
from remediator_testing.harness.scenarios import SCENARIOS, run


async def main(names: list[str]) -> int:
    started = time.monotonic()
    failed = 0
    for name in names:
        try:
            result = await run(name)
        except Exception as exc:  # report and go on with the next scenario
            failed += 1
            print(f"{name:<22} FAILED: {exc}", flush=True)
            continue
        for figures in result.figures:
            print(figures.line(), flush=True)
        print(f"{'':<22} ({len(result.figures)} episode(s), {result.seconds:.1f}s)", flush=True)
    print(f"total {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    configure("console", "error")
    sys.exit(asyncio.run(main(args.scenarios or list(SCENARIOS))))
