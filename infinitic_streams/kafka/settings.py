"""The configuration of every Kafka client the project builds, in one place.

Each client gets, in this order (later wins):
1. the project's defaults for every client (`COMMON`) and for its role (`defaults`);
2. the user's whole `[kafka]` settings: bootstrap servers, security (SASL, TLS), tuning;
3. what the role needs to be correct (`required`: a group id, read_committed, a
   transactional id), which no setting may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infinitic_streams.errors import InfiniticError
from infinitic_streams.logs import remember_secrets

COMMON: dict[str, Any] = {
    # Come back quickly once a restarted broker listens again (librdkafka's cap is 10 s).
    "reconnect.backoff.max.ms": 1000,
    # Learn of moved leaders within 30 s even where librdkafka does not refresh on an error
    # (its default is every 5 minutes).
    "topic.metadata.refresh.interval.ms": 30_000,
}


def bootstrap_of(kafka: Mapping[str, Any]) -> str:
    """The bootstrap servers of the settings; a clear error when they are missing."""
    bootstrap = kafka.get("bootstrap.servers")
    if not isinstance(bootstrap, str) or not bootstrap.strip():
        raise InfiniticError(
            'the Kafka settings need "bootstrap.servers" (e.g. "127.0.0.1:9092"), '
            f"got {bootstrap!r}"
        )
    return bootstrap


def client_config(
    kafka: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    required: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Project defaults, then the user's settings, then the role's required settings. Secret
    settings are remembered, so that a log line never shows them (`logs.SecretFilter`)."""
    bootstrap_of(kafka)
    remember_secrets(kafka)
    return {**COMMON, **(defaults or {}), **kafka, **(required or {})}
