"""Rendering the overlays with stock kubectl, and reading what came out."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("single", "ha")
KUBECTL = Path("/usr/bin/kubectl")


def kubectl_binary() -> Path:
    if not KUBECTL.is_file():
        pytest.fail(f"stock kubectl is required at {KUBECTL} for these tests, and it is missing")
    return KUBECTL


@cache
def _rendered(overlay: str) -> str:
    """`overlay`: an overlay's name, or a directory of deploy/ (`alert-rules`)."""
    where = ROOT / "deploy" / ("overlays" if overlay in OVERLAYS else "") / overlay
    done = subprocess.run(
        [str(kubectl_binary()), "kustomize", str(where)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class _Loader(yaml.SafeLoader):
    """YAML 1.2 as kubectl reads it: kustomize writes `matchType: =` unquoted, which YAML 1.1
    (PyYAML) would take for its obsolete `value` tag."""


_Loader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def render(overlay: str) -> list[dict[str, Any]]:
    """Every object the overlay renders to (a fresh copy each call)."""
    return [doc for doc in yaml.load_all(_rendered(overlay), Loader=_Loader) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str = "remediator") -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def config_map(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == "ConfigMap"]
    return found
