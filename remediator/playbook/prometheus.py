"""The `prometheus=` keyword: read-only instant queries, recorded with the run.

A playbook reads facts it cannot get from the alert (a topic's partition count) here. Every
query is recorded as a call, so the record and the report show where a number came from.
Failures are `PrometheusError`: to a playbook they all mean "could not find out".
"""

from __future__ import annotations

from remediator.clients.prometheus import (
    PrometheusClient,
    PrometheusError,
    Sample,
    escape_label_value,
)
from remediator.playbook.context import Run

__all__ = ["Prometheus", "PrometheusError", "Sample", "escape_label_value"]


class Prometheus:
    def __init__(self, run: Run, client: PrometheusClient) -> None:
        self._run = run
        self._client = client

    async def query(self, promql: str) -> list[Sample]:
        await self._run.record_call("query", "prometheus", self._client.url, {"query": promql})
        return await self._client.query(promql)
