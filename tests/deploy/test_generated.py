"""deploy/ holds what `remediator rbac` and alert_rules/ say, byte for byte."""

from __future__ import annotations

import pytest

from tests.deploy import generated


@pytest.mark.parametrize("path", sorted(generated.expected()), ids=lambda p: p.name)
def test_file_is_what_it_is_generated_from(path: generated.Path) -> None:
    assert path.read_text() == generated.expected()[path], (
        f"{path.relative_to(generated.ROOT)} is out of date: run `python -m tests.deploy.generated`"
    )


def test_the_shipped_rbac_is_the_commands_output_for_the_defaults() -> None:
    assert generated.rbac(config=None) == generated.rbac(generated.CONFIG)
