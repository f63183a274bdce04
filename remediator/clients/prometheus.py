"""Instant queries against Prometheus, for verification.

prometheus_api_client is synchronous (requests), so each query runs in a worker thread with a
deadline; the requests timeout bounds the thread itself. Every failure (refused connection,
timeout, HTTP error, a query Prometheus rejects) becomes one `PrometheusError`: to the caller
they all mean the same thing, "we could not find out".
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry


class PrometheusError(Exception):
    pass


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def escape_label_value(value: str) -> str:
    """Escape for the inside of a PromQL double-quoted string literal."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def parse_result(result: Any) -> list[Sample]:
    """The `data.result` of an instant query: a vector (list of series) or a scalar."""
    if not isinstance(result, list):
        raise PrometheusError(f"unexpected query result: {str(result)[:200]}")
    if len(result) == 2 and not isinstance(result[0], dict):  # scalar or string: [time, value]
        return [Sample({}, _number(result[1]))]
    samples = []
    for series in result:
        value = series.get("value") or (series.get("values") or [[0, "NaN"]])[-1]
        samples.append(Sample(dict(series.get("metric", {})), _number(value[1])))
    return samples


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class PrometheusClient:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 1,
        bearer: str | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._deadline = timeout * (retries + 1) + 1.0
        self._api = PrometheusConnect(
            url=self.url,
            headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
            disable_ssl=not verify_tls,
            retry=Retry(total=retries, backoff_factor=0.2, status_forcelist=[502, 503, 504]),
            timeout=timeout,
        )

    async def query(self, promql: str) -> list[Sample]:
        try:
            async with asyncio.timeout(self._deadline):
                raw = await asyncio.to_thread(self._api.custom_query, promql)
        except TimeoutError as exc:
            raise PrometheusError(f"no answer from {self.url} within {self._deadline:g} s") from exc
        except (OSError, PrometheusApiClientException, ValueError, KeyError) as exc:
            # requests' errors are OSErrors; the library raises its own for HTTP errors.
            raise PrometheusError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        return parse_result(raw)

    def close(self) -> None:
        self._api.close()
