"""Two distributions from this repository: `remediator` (the daemon, what the Docker image and
`pip install remediator` get) and `remediator-testing` (the test kit, testing/). Both wheels are
built from a clean copy of the sources and read."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser

import pytest
from packaging.requirements import Requirement

from tests.deploy.render import ROOT

SOURCES = ["pyproject.toml", "README.md", "remediator", "playbooks", "alert_rules", "testing"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    """Both wheels, built from a copy of the tracked sources (no stale build/ directory)."""
    tmp = tmp_path_factory.mktemp("wheels")
    src, out = tmp / "src", tmp / "out"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "dist")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    for project in (src, src / "testing"):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), "."],
            cwd=project,
            check=True,
            capture_output=True,
        )
    found = {w.name.split("-")[0]: zipfile.ZipFile(w) for w in out.glob("*.whl")}
    assert set(found) == {"remediator", "remediator_testing"}
    return found


def metadata(wheel: zipfile.ZipFile) -> tuple[dict[str, str], list[Requirement]]:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(wheel.read(name).decode())
    requires = [Requirement(r) for r in message.get_all("Requires-Dist") or []]
    return {"Name": message["Name"], "Version": message["Version"]}, requires


def runtime(requires: list[Requirement]) -> set[str]:
    return {r.name for r in requires if r.marker is None or r.marker.evaluate({"extra": ""})}


def test_the_daemon_wheel_holds_the_daemon_only(wheels: dict[str, zipfile.ZipFile]) -> None:
    names = wheels["remediator"].namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"remediator", "playbooks"}
    assert not [n for n in names if "testing" in n or "emulator" in n]
    info, requires = metadata(wheels["remediator"])
    assert info["Name"] == "remediator"
    assert not runtime(requires) & {"pytest", "pytest-asyncio", "jsonpatch", "remediator-testing"}
    assert "remediator-testing" in {r.name for r in requires}  # the [test] extra


def test_the_kit_wheel_ships_its_data_entry_points_and_pins_the_daemon(
    wheels: dict[str, zipfile.ZipFile],
) -> None:
    kit = wheels["remediator_testing"]
    names = kit.namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
        "remediator_testing"
    }
    rules = sorted(n for n in names if n.startswith("remediator_testing/alert_rules/"))
    shipped = sorted(p.name for p in (ROOT / "alert_rules").glob("*.yml"))
    assert [n.rsplit("/", 1)[1] for n in rules] == shipped
    for name in rules:  # copies, not links: byte for byte the repository's files
        assert kit.read(name) == (ROOT / "alert_rules" / name.rsplit("/", 1)[1]).read_bytes()
    assert "remediator_testing/py.typed" in names
    [points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = kit.read(points).decode()
    assert "[remediator.commands]" in text and "[pytest11]" in text
    info, requires = metadata(kit)
    assert info["Name"] == "remediator-testing"
    daemon = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert info["Version"] == daemon["version"]
    [pin] = [r for r in requires if r.name == "remediator"]
    assert str(pin.specifier) == f"=={daemon['version']}"
    assert f"remediator-testing=={daemon['version']}" in daemon["optional-dependencies"]["test"]


def test_the_readme_installs_the_kit_before_the_demo() -> None:
    readme = (ROOT / "README.md").read_text()
    run_it = readme.split("## Run it", 1)[1].split("\n## ", 1)[0]
    commands = "\n".join(re.findall(r"```sh\n(.*?)```", run_it, re.S))
    assert ".venv/bin/pip install . && " in commands  # the daemon alone serves
    demo = commands.index("remediator demo")
    assert 0 <= commands.find("pip install ./testing") < demo
