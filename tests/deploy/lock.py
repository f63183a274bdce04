"""`python -m tests.deploy.lock > requirements.lock`: the runtime dependencies installed here,
pinned, closed over their own requirements (the Docker image installs exactly these)."""

from __future__ import annotations

import importlib.metadata as md

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEADER = """\
# The runtime dependencies of remediator, pinned: the Docker image installs exactly these
# (`pip install -r requirements.lock`). Regenerate from a fresh `pip install .` with
# `python -m tests.deploy.lock > requirements.lock` after changing pyproject.toml's dependencies.
"""


def pins() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(requirement: str) -> None:
        parsed = Requirement(requirement)
        if parsed.marker is not None and not parsed.marker.evaluate({"extra": ""}):
            return
        name = canonicalize_name(parsed.name)
        if name not in found:
            dist = md.distribution(parsed.name)
            found[name] = dist.version
            for sub in dist.requires or []:
                walk(sub)

    for requirement in md.distribution("remediator").requires or []:
        walk(requirement)
    return dict(sorted(found.items()))


def render() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins().items())


if __name__ == "__main__":
    print(render(), end="")
