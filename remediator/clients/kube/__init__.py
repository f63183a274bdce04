"""Kubernetes through `kubernetes.aio`: connection, retries and the calls playbooks need.

Network I/O only; what a call means for a remediation (guards, the record, shadow mode) is the
playbook layer's `remediator.playbook.kube`.
"""

from remediator.clients.kube.client import JsonObj, KubeClient, Precondition
from remediator.clients.kube.connect import open_api_client
from remediator.clients.kube.errors import KubeError, KubeUnavailable
from remediator.clients.kube.retry import RetryPolicy
from remediator.config import KubernetesSettings


async def open_kube(settings: KubernetesSettings) -> KubeClient:
    """The client for `settings` (mode must not be none)."""
    retry = settings.retry
    return KubeClient(
        await open_api_client(settings),
        timeout_seconds=settings.request_timeout_seconds,
        retry=RetryPolicy(
            attempts=retry.attempts,
            initial_backoff_seconds=retry.initial_backoff_seconds,
            max_backoff_seconds=retry.max_backoff_seconds,
            max_retry_after_seconds=retry.max_retry_after_seconds,
        ),
        poll_seconds=settings.poll_seconds,
    )


__all__ = [
    "JsonObj",
    "KubeClient",
    "KubeError",
    "KubeUnavailable",
    "Precondition",
    "RetryPolicy",
    "open_api_client",
    "open_kube",
]
