"""Loading playbook files by path, reporting every file that fails instead of stopping at one."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from remediator.playbook.registry import Registry


@dataclass(frozen=True)
class LoadProblem:
    path: str
    error: str

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


def builtin_dir() -> Path:
    """The shipped `playbooks` package: next to `remediator/` both in a checkout and a wheel."""
    import playbooks  # the top-level package of built-in playbooks

    # `__path__`, not `__file__`: an editable install can import the package as a namespace
    # package (no `__file__`) whose path lists the checkout's directory among import hooks.
    for entry in playbooks.__path__:
        if (Path(entry) / "__init__.py").is_file():
            return Path(entry).resolve()
    raise RuntimeError(f"the built-in playbooks are not installed (looked in {playbooks.__path__})")


def playbook_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))


def load_file(path: Path, registry: Registry) -> LoadProblem | None:
    # A unique module name per load keeps files with equal names apart and lets tests load
    # the same file into several registries (sys.modules would otherwise cache it).
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]  # noqa: S324
    module_name = f"remediator_playbooks_{path.stem}_{digest}_{id(registry):x}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            return LoadProblem(str(path), "not a loadable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pydantic resolve annotations here
        with registry.loading():
            spec.loader.exec_module(module)
    except Exception as exc:  # a broken user file must be reported, not crash the loader
        sys.modules.pop(module_name, None)
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"line {f.lineno}" for f in reversed(tb) if f.filename == str(path)), "")
        return LoadProblem(
            str(path), f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else "")
        )
    return None


def load_directories(
    directories: list[Path], registry: Registry, *, builtin: bool = True
) -> list[LoadProblem]:
    problems: list[LoadProblem] = []
    dirs = ([builtin_dir()] if builtin else []) + list(directories)
    for directory in dirs:
        if not directory.is_dir():
            problems.append(LoadProblem(str(directory), "not a directory"))
            continue
        for path in playbook_files(directory):
            problem = load_file(path, registry)
            if problem is not None:
                problems.append(problem)
    return problems
