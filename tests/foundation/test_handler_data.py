"""A run's data for its later handlers comes back as the model the handler names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from playbooks.pg_idle_in_transaction import AfterStep, still_exhausted
from playbooks.restart_crashloop import Restarted, still_crash_looping
from playbooks.scale_on_lag import ScaledUp, scale_back
from remediator.playbook.handler_data import data_model, handler_data, load


class Found(BaseModel):
    replicas: int


async def typed(*, data: Found, **_: Any) -> None: ...


async def optional(*, data: Found | None = None, **_: Any) -> None: ...


async def untyped(*, data: Any, **_: Any) -> None: ...


def test_the_built_in_handlers_name_their_models() -> None:
    assert data_model(scale_back) is ScaledUp
    assert data_model(scale_back, "baseline") is ScaledUp
    assert data_model(still_crash_looping) is Restarted
    assert data_model(still_exhausted) is AfterStep


def test_a_model_is_stored_as_json_and_comes_back_as_the_model() -> None:
    stored = handler_data(Found(replicas=3))
    assert stored == {"replicas": 3}
    assert load(typed, stored) == Found(replicas=3)
    assert load(optional, stored) == Found(replicas=3)
    assert load(optional, None) is None


def test_fields_left_at_their_defaults_are_not_stored() -> None:
    assert handler_data(AfterStep(terminated=4)) == {"terminated": 4}
    assert load(still_exhausted, {"terminated": 4}) == AfterStep(terminated=4)
    # A required field is stored even when it is None (KEDA: no annotation before).
    scaled = ScaledUp(how="keda", object="c", found=None, set=5, replicas_found=3)
    assert handler_data(scaled)["found"] is None
    assert load(scale_back, handler_data(scaled)) == scaled


def test_records_written_before_the_models_still_load() -> None:
    # What scale-on-lag and the PostgreSQL playbook stored as plain dicts.
    old = {"replicas_found": 3, "set": 5, "how": "keda", "object": "consumer", "found": None}
    assert load(scale_back, old) == ScaledUp(
        how="keda", object="consumer", found=None, set=5, replicas_found=3
    )
    assert (
        load(
            scale_back, {"replicas_found": 2, "set": 4, "how": "hpa", "object": "web", "found": 2}
        ).found
        == 2
    )
    assert load(still_exhausted, {"restarted": "Deployment/shop/orders"}) == AfterStep(
        restarted="Deployment/shop/orders"
    )


def test_a_handler_without_a_model_gets_the_json_as_it_is() -> None:
    assert data_model(untyped) is None
    assert load(untyped, {"anything": [1, 2]}) == {"anything": [1, 2]}
    assert handler_data({"anything": 1}) == {"anything": 1}


def test_a_record_the_handler_cannot_read_fails_loudly() -> None:
    with pytest.raises(ValidationError):
        load(scale_back, {"how": "sideways", "set": 5})
