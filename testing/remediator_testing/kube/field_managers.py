"""The `fieldManager` query parameter of writes, checked as the API server checks it.

A real API server records the manager of every field a write sets (`metadata.managedFields`),
which is what lets a GitOps controller ignore fields by manager; it refuses a manager name
longer than 128 characters or with non-printable characters (422, `fieldManager: ...`). The
emulator accepts the parameter on every write, refuses the same names, and keeps it in the
request record, so tests can check that each write named its manager.
"""

from __future__ import annotations

from collections.abc import Mapping

from remediator_testing.kube import errors

MAX_LENGTH = 128
_OPTIONS = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}


def check(method: str, query: Mapping[str, str]) -> None:
    """Raise the API server's 422 when a write names an invalid field manager."""
    kind = _OPTIONS.get(method)
    manager = query.get("fieldManager")
    if kind is None or manager is None:
        return
    if len(manager) > MAX_LENGTH:
        problem = f"Too long: may not be more than {MAX_LENGTH} bytes"
    elif not manager.isprintable():
        problem = f"Invalid value: {manager!r}: must only contain printable characters"
    else:
        return
    raise errors.ApiError(
        422,
        f'{kind}.meta.k8s.io "" is invalid: fieldManager: {problem}',
        reason="Invalid",
        details={
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": problem, "field": "fieldManager"}
            ],
        },
    )
