"""What a run hands to its later handlers (`run.on_resolved` -> `revert`, `run.follow_up` ->
`follow_up`), and how it comes back.

A playbook declares a pydantic model as its handler's `data` (and `baseline`) annotation; the
run stores the model as JSON in a durable timer, and the engine validates it back into that
model before calling the handler, so the handler reads `data.found`, not `data["found"]`, and a
record the handler cannot read fails loudly (escalated) instead of half-working. A handler
without a model annotation gets the plain JSON, as before.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from remediator.playbook.context import JSON


def handler_data(data: JSON | BaseModel) -> JSON:
    """The JSON a timer stores for `data`."""
    if isinstance(data, BaseModel):
        # Fields left at their defaults are not stored: they come back as the defaults.
        return data.model_dump(mode="json", exclude_defaults=True)
    return data


def data_model(fn: Callable[..., Any], keyword: str = "data") -> type[BaseModel] | None:
    """The model `fn` declares for `keyword`, if its annotation is a model (or an optional one)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: treat the data as plain JSON
        return None
    hint = hints.get(keyword)
    for candidate in (hint, *typing.get_args(hint)):
        if inspect.isclass(candidate) and issubclass(candidate, BaseModel):
            return candidate
    return None


def load(fn: Callable[..., Any], raw: JSON, keyword: str = "data") -> Any:
    """`raw` as `fn` wants it for `keyword`: validated into its model, or as it is."""
    model = data_model(fn, keyword)
    if model is None or raw is None:
        return raw
    return model.model_validate(raw)
