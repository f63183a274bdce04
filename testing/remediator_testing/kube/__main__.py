"""Run an emulator by hand: `python -m remediator_testing.kube --kubeconfig PATH`.

Useful for demos and for poking at the emulator with kubectl; it serves until
interrupted. `--scenario shop` seeds a small shop (Deployment `api` with HPA
and PDB, StatefulSet `redis`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from remediator_testing.kube.emulator import KubeEmulator


def _seed_shop(emu: KubeEmulator) -> None:
    emu.add_namespace("shop")
    emu.add_deployment("shop", "api", replicas=3, image="api:1")
    emu.add_hpa("shop", "api", min_replicas=2, max_replicas=10)
    emu.add_pdb("shop", "api-pdb", selector={"app": "api"}, min_available=2)
    emu.add_statefulset("shop", "redis", replicas=3, image="redis:7")


async def _serve(kubeconfig: str, scenario: str, ready_after: float) -> None:
    emu = KubeEmulator(ready_after=ready_after)
    url = await emu.start()
    try:
        emu.kubeconfig(kubeconfig)
        if scenario == "shop":
            _seed_shop(emu)
        print(f"kube emulator at {url}; kubeconfig written to {kubeconfig}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await emu.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--scenario", choices=("empty", "shop"), default="shop")
    parser.add_argument("--ready-after", type=float, default=1.0, help="pod start-up seconds")
    args = parser.parse_args()
    asyncio.run(_serve(args.kubeconfig, args.scenario, args.ready_after))


if __name__ == "__main__":
    main()
