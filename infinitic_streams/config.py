"""`infinitic.toml`: one file for clients, workers and the CLI.

    namespace = "default"
    partitions = 8                      # of the topics infinitic-streams creates
    max_payload_bytes = 1048576         # the most one encoded argument list or result may take

    [kafka]                             # librdkafka settings, given to every Kafka client
    "bootstrap.servers" = "127.0.0.1:9092"

    [worker]
    services = ["examples.images:ImageUtilImpl"]    # module:Class, instantiated without arguments
    workflows = ["examples.images:ImageWorkflow"]
    engine = true
    state_dir = ".infinitic/state"
    concurrency = 16                    # tasks run at once per service
    cache_size = 10000                  # live workflow instances kept in memory by the engine
    instance_id = "engine-0"            # stable name of this process (default: kept in state_dir)
    visibility = true                   # with the engine, the index of list/count (events topic)

    [dashboard]
    token = "a long random string"      # required to serve the dashboard off loopback

    [metrics]
    port = 9464                         # /metrics, /healthz, /readyz of workers (default: none)
    host = "0.0.0.0"                    # the address that port listens on

`$INFINITIC_KAFKA`, when set, replaces `bootstrap.servers`.
"""

from __future__ import annotations

import difflib
import importlib
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from infinitic_streams.errors import InfiniticError
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES

T = TypeVar("T")
TOP_LEVEL_KEYS = (
    *("namespace", "partitions", "max_payload_bytes", "kafka"),
    *("worker", "dashboard", "metrics"),
)


class ConfigError(InfiniticError):
    """The configuration file is missing or wrong; the message names the key."""


@dataclass
class WorkerConfig:
    services: list[str] = field(default_factory=list)
    workflows: list[str] = field(default_factory=list)
    engine: bool = True
    state_dir: str = ".infinitic/state"
    concurrency: int = 16
    cache_size: int = 10_000
    instance_id: str | None = None
    visibility: bool = True


@dataclass
class DashboardConfig:
    token: str | None = None  # every request must carry it; required off loopback


@dataclass
class MetricsConfig:
    port: int | None = None  # a worker serves /metrics, /healthz, /readyz on it
    host: str = "0.0.0.0"


@dataclass
class InfiniticConfig:
    kafka: dict[str, Any]
    namespace: str = "default"
    partitions: int = 8
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @classmethod
    def load(cls, path: str | Path = "infinitic.toml") -> InfiniticConfig:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no configuration file {path}: create it (see README)") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        check_keys(path, raw, TOP_LEVEL_KEYS, "at the top level")
        kafka = dict(raw.get("kafka", {}))
        if bootstrap := os.environ.get("INFINITIC_KAFKA"):
            kafka["bootstrap.servers"] = bootstrap
        if "bootstrap.servers" not in kafka:
            raise ConfigError(f'{path}: set "bootstrap.servers" under [kafka]')
        return cls(
            kafka,
            raw.get("namespace", "default"),
            raw.get("partitions", 8),
            _table(path, raw, "worker", WorkerConfig),
            raw.get("max_payload_bytes", DEFAULT_MAX_PAYLOAD_BYTES),
            _table(path, raw, "dashboard", DashboardConfig),
            _table(path, raw, "metrics", MetricsConfig),
        )


def _table(path: Path, raw: dict[str, Any], name: str, cls: type[T]) -> T:
    """The `[name]` table as `cls` (a dataclass): misspelt keys are errors."""
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    check_keys(path, table, [f.name for f in fields(cls)], f"in [{name}]")  # type: ignore[arg-type]
    return cls(**table)


def check_keys(path: Path, table: dict[str, Any], known: Sequence[str], where: str) -> None:
    """A misspelt key is an error naming the closest valid one."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"{path}: unknown key {key!r} {where}; {hint}the keys are {', '.join(known)}"
            )


def import_object(reference: str) -> Any:
    """`package.module:Name` -> the object (configuration is trusted code, not message data)."""
    module_name, _, attribute = reference.partition(":")
    if not attribute:
        raise ConfigError(f"{reference!r}: write it as module:Name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import {module_name} (for {reference}): {error}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{module_name} has no {attribute} (for {reference})") from None
