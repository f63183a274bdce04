"""The README's configuration reference is generated from the settings models; keep it true."""

from pathlib import Path

from remediator.configdoc import render

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert render() in readme, "run: python -m remediator.configdoc --write README.md"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test" in readme and "exec bash scripts/test" in ci
