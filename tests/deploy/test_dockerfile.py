"""The Dockerfile, read (docker cannot run here): pinned versions, the manifests' user, no build
or install tools in the final stage, a health check with what the image has."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy import lock
from tests.deploy.render import ROOT, one, render

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """(ARG defaults, stages) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            stages.append(Stage(base, words[2] if len(words) > 2 else None))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def test_the_base_image_is_pinned_to_a_full_version() -> None:
    _, stages = parse()
    assert len(stages) == 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stage.base)
    assert stages[0].base == stages[1].base  # the venv's interpreter is the final stage's


def test_every_python_package_is_pinned_by_the_lock() -> None:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        wanted = Requirement(dependency)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is not in requirements.lock"
        assert wanted.specifier.contains(pins[name], prereleases=True), dependency
    # The lock is what this environment resolved: regenerate it when it is not.
    assert (ROOT / "requirements.lock").read_text() == lock.render()
    _, (build, _) = parse()
    installs = [r for r in build.all("RUN") if "pip install" in r]
    assert any("-r requirements.lock" in r for r in installs)
    assert all("requirements.lock" in r for r in installs)


def test_the_final_stage_runs_as_the_manifests_user_without_build_tools() -> None:
    _, (_, final) = parse()
    deployment = one(render("single"), "Deployment")
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert final.all("USER") == [f"{context['runAsUser']}:{context['runAsGroup']}"]
    run = " ".join(final.all("RUN"))
    assert f"--uid {context['runAsUser']}" in run and f"--gid {context['runAsGroup']}" in run
    for tool in ("apt-get", "apk", "gcc", "build-essential", "pip install", "curl", "wget"):
        assert tool not in run, tool
    assert "pip uninstall --yes pip setuptools wheel" in run
    assert final.all("COPY") == ["--from=build /opt/remediator /opt/remediator"]


def test_the_health_check_uses_only_python_and_the_daemons_liveness_route() -> None:
    _, (_, final) = parse()
    [check] = final.all("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    argv = json.loads(command)  # the exec form: no shell, no tool but python
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2] and "http://127.0.0.1:9095/healthz" in argv[2]
    assert "--timeout=" in options
    assert final.all("EXPOSE") == ["9095"]
    assert final.all("ENTRYPOINT") == ['["remediator", "serve"]']
