"""Building a `kubernetes.aio` ApiClient from the `kubernetes:` settings.

Three ways in, as kubectl has them: the pod's service account (in-cluster), a kubeconfig file
and context, or an explicit URL with a token file and a CA bundle. The client's own retries
are switched off: `retry.py` decides what is retried, once, for every call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes.aio import client, config
from kubernetes.aio.config.config_exception import ConfigException

from remediator.config import ConfigError, KubernetesSettings


async def open_api_client(settings: KubernetesSettings) -> Any:
    """An ApiClient for the configured cluster; ConfigError naming the key when it cannot be."""
    configuration = client.Configuration()
    try:
        if settings.mode == "in_cluster":
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        elif settings.mode == "kubeconfig":
            await config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(settings.kubeconfig) if settings.kubeconfig else None,
                context=settings.context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif settings.mode == "url":
            _explicit(configuration, settings)
        else:
            raise ConfigError([f"kubernetes.mode {settings.mode!r} opens no client"])
    except (ConfigException, OSError) as exc:
        raise ConfigError([f"kubernetes ({settings.mode}): {exc}"]) from exc
    configuration.retries = None
    return client.ApiClient(configuration)


def _explicit(configuration: Any, settings: KubernetesSettings) -> None:
    configuration.host = str(settings.url).rstrip("/")
    configuration.verify_ssl = settings.verify_tls
    if settings.ca_file is not None:
        if not settings.ca_file.is_file():
            raise ConfigError([f"kubernetes.ca_file: {settings.ca_file} is not a file"])
        configuration.ssl_ca_cert = str(settings.ca_file)
    if settings.token_file is not None:
        token_file = settings.token_file
        # Read now to fail at start-up rather than at the first remediation; the key must be
        # present for the client to ask the hook at all.
        configuration.api_key["authorization"] = _read_token(token_file)
        configuration.api_key_prefix["authorization"] = "Bearer"

        def refresh(conf: Any) -> None:
            # Projected service account tokens rotate; a re-read per request is cheap.
            conf.api_key["authorization"] = _read_token(token_file)

        configuration.refresh_api_key_hook = refresh


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([f"kubernetes.token_file: cannot read {path}: {exc.strerror}"]) from exc
    if not token:
        raise ConfigError([f"kubernetes.token_file: {path} is empty"])
    return token
