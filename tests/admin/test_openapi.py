"""The OpenAPI document matches the implementation: schemathesis generates requests for every
operation from /admin/openapi.json and checks each answer (never a 5xx, a documented status,
the documented content type and response schema)."""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from remediator.http.admin import admin_app
from remediator.http.admin.auth import AdminTokens
from tests.admin.helpers import OPERATOR, admin_config, call
from tests.conftest import MakeDaemon
from tests.governance.helpers import World, firing, labels, post_and_settle, registry_with

MAX_EXAMPLES = 15
# Some input is valid by the schema yet refused with 422 by design: a target key's shape
# depends on the scope, and labels must name a target of the playbook; JSON Schema cannot say
# either. Everything else the default checks cover stays on.
EXCLUDED = [positive_data_acceptance]
REQUIRED = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _fuzz(base_url: str, spec: dict[str, Any]) -> list[str]:
    schema = schemathesis.openapi.from_dict(spec)
    tested = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()

            @hypothesis.settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            @given(case=operation.as_strategy())
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    base_url=base_url,
                    session=session,
                    headers={"Authorization": f"Bearer {OPERATOR}"},
                    additional_checks=REQUIRED,
                    excluded_checks=EXCLUDED,
                )

            check()
            tested.append(f"{operation.method.upper()} {operation.path}")
    return tested


async def test_schemathesis_against_the_served_app(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(registry_with(World()), config=admin_config(mode="approve"))
    await post_and_settle(daemon, firing(labels("orders")))  # something to read and approve
    status, spec = await call(daemon, "GET", "/admin/openapi.json", token=None)
    assert status == 200
    base_url = str(daemon.client.make_url("/")).rstrip("/")
    tested = await asyncio.to_thread(_fuzz, base_url, spec)
    # Every route the app serves is documented (and fuzzed), and nothing else is.
    routes = {
        f"{route.method} /admin{route.resource.canonical}"
        for route in admin_app(AdminTokens()).router.routes()
        if route.method != "HEAD" and route.resource is not None
    } - {"GET /admin/openapi.json"}
    assert sorted(tested) == sorted(routes)
