"""What the commands that read `infinitic.toml` share: the `--config` option, loading and
checking the file, importing the classes it names, and checking that Kafka and the engine are
there before talking to them. Every failure prints what is wrong and how to fix it, in red, and
exits with code 1."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from infinitic_streams.cli.options import explicit_config
from infinitic_streams.config import ConfigError, InfiniticConfig, import_object
from infinitic_streams.definitions import service_spec, workflow_spec
from infinitic_streams.kafka.admin import Admin, is_reachable
from infinitic_streams.kafka.errors import KafkaAuthError, KafkaUnavailable
from infinitic_streams.topics import Topics
from infinitic_streams.workflows.workflow import Workflow

# Every command says within this long that Kafka does not answer (a metadata request).
KAFKA_CHECK_TIMEOUT_S = 3.0

EXAMPLE_CONFIG = """\
    namespace = "default"
    partitions = 8

    [kafka]
    "bootstrap.servers" = "127.0.0.1:9092"

    [worker]
    services = ["myapp.services:MyServiceImpl"]
    workflows = ["myapp.workflows:MyWorkflow"]"""


def fail(message: str) -> typer.Exit:
    """Print `message` in red on stderr; raise the returned Exit (code 1)."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def warn(message: str) -> None:
    typer.secho(message, fg=typer.colors.YELLOW, err=True)


def load_settings(
    path: Path, namespace: str | None = None, bootstrap: str | None = None
) -> InfiniticConfig:
    """What a client command talks to: the configuration file if there is one (or if it was
    named), with --namespace and --bootstrap applied; without a file, those options (or
    $INFINITIC_KAFKA) alone."""
    if path.exists() or explicit_config(path):
        config = load_config(path)
    else:
        address = bootstrap or os.environ.get("INFINITIC_KAFKA")
        if not address:
            raise fail(_no_config(path, "pass --bootstrap HOST:PORT (and --namespace NAME), "))
        config = InfiniticConfig(kafka={"bootstrap.servers": address})
    return with_options(config, path, namespace, bootstrap)


def with_options(
    config: InfiniticConfig, path: Path, namespace: str | None, bootstrap: str | None
) -> InfiniticConfig:
    """`config` with --namespace and --bootstrap applied (and checked)."""
    if bootstrap:
        config.kafka["bootstrap.servers"] = bootstrap
    if namespace:
        config.namespace = namespace
    if problems := _problems(config):
        raise fail(f"Invalid configuration {path}: {'; '.join(problems)}")
    return config


def _no_config(path: Path, alternative: str = "") -> str:
    return (
        f"No configuration file {path} (in {Path.cwd()}). Create one, for example:\n\n"
        f"{EXAMPLE_CONFIG}\n\nor {alternative}pass --config PATH (or set $INFINITIC_CONFIG)."
    )


def load_config(path: Path) -> InfiniticConfig:
    """The configuration at `path`, checked; a missing or wrong file fails naming the fix."""
    if not path.exists():
        raise fail(_no_config(path))
    try:
        config = InfiniticConfig.load(path)
    except ConfigError as error:
        raise fail(f"Invalid configuration: {error}") from None
    except (OSError, TypeError, ValueError) as error:  # a directory, a [kafka] that is no table
        raise fail(f"Invalid configuration {path}: {error}") from None
    if problems := _problems(config):
        raise fail(f"Invalid configuration {path}: {'; '.join(problems)}")
    _add_import_paths(path)
    return config


def _problems(config: InfiniticConfig) -> list[str]:
    problems = []
    if not isinstance(config.namespace, str):
        problems.append('namespace must be a string, e.g. namespace = "default"')
    else:
        try:
            Topics(config.namespace)
        except ValueError as error:
            problems.append(str(error))
    if not _positive_int(config.partitions):
        problems.append(f"partitions must be a positive integer, not {config.partitions!r}")
    if not _positive_int(config.max_payload_bytes):
        problems.append(
            f"max_payload_bytes must be a positive integer, not {config.max_payload_bytes!r}"
        )
    bootstrap = config.kafka.get("bootstrap.servers")
    if not isinstance(bootstrap, str) or not bootstrap.strip():
        problems.append('[kafka] "bootstrap.servers" must be a string like "127.0.0.1:9092"')
    token = config.dashboard.token
    if token is not None and (not isinstance(token, str) or not token.strip()):
        problems.append('[dashboard] token must be a non-empty string, e.g. token = "s3cret..."')
    worker = config.worker
    for key in ("services", "workflows"):
        value = getattr(worker, key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f'[worker] {key} must be a list of "module:Class" strings')
    if not isinstance(worker.engine, bool):
        problems.append("[worker] engine must be true or false")
    if not isinstance(worker.state_dir, str):
        problems.append("[worker] state_dir must be a path (a string)")
    if not _positive_int(worker.concurrency):
        problems.append(
            f"[worker] concurrency must be a positive integer, not {worker.concurrency!r}"
        )
    return problems


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _add_import_paths(path: Path) -> None:
    """`module:Class` references are relative to the project: the config's directory (and the
    current one, as `python -m` would have it), even when run as the installed script."""
    for directory in (str(Path.cwd()), str(path.resolve().parent)):
        if directory not in sys.path:
            sys.path.insert(0, directory)


def _import(reference: str, key: str, path: Path) -> Any:
    try:
        return import_object(reference)
    except ConfigError as error:
        raise fail(f"Invalid configuration {path}: [worker] {key}: {error}") from None
    except Exception as error:  # the user's module raised while being imported
        raise fail(
            f"Invalid configuration {path}: [worker] {key}: importing {reference} raised "
            f"{type(error).__name__}: {error}"
        ) from None


def workflow_classes(config: InfiniticConfig, path: Path) -> dict[str, type]:
    """The workflow classes of [worker].workflows, by their @workflow name."""
    classes: dict[str, type] = {}
    for reference in config.worker.workflows:
        cls = _import(reference, "workflows", path)
        if not (isinstance(cls, type) and issubclass(cls, Workflow)):
            raise fail(
                f"Invalid configuration {path}: [worker] workflows: {reference} is not a "
                "Workflow subclass"
            )
        name = workflow_spec(cls).name
        if name in classes and classes[name] is not cls:
            raise fail(
                f"Invalid configuration {path}: [worker] workflows: two classes are named "
                f"{name!r}; give one another name with @workflow(...)"
            )
        classes[name] = cls
    return classes


def require_workflows(config: InfiniticConfig, path: Path, why: str) -> dict[str, type]:
    classes = workflow_classes(config, path)
    if not classes:
        raise fail(
            f"[worker] workflows of {path} lists no workflow class, and {why}. Add your "
            'classes, e.g. workflows = ["myapp.workflows:MyWorkflow"].'
        )
    return classes


def service_classes(config: InfiniticConfig, path: Path) -> list[type]:
    """The service implementation classes of [worker].services (not instantiated)."""
    classes = []
    for reference in config.worker.services:
        cls = _import(reference, "services", path)
        try:
            service_spec(cls)
        except TypeError as error:
            raise fail(f"Invalid configuration {path}: [worker] services: {error}") from None
        classes.append(cls)
    return classes


def bootstrap_of(config: InfiniticConfig) -> str:
    return str(config.kafka["bootstrap.servers"])


def require_kafka(config: InfiniticConfig, path: Path) -> str:
    """The bootstrap servers, once a broker there answered with the configured settings; else
    fail naming the fixes (refused credentials say so)."""
    bootstrap = bootstrap_of(config)
    try:
        reachable = is_reachable(config.kafka, KAFKA_CHECK_TIMEOUT_S)
    except KafkaAuthError as error:
        raise fail(f"{error}\n(the [kafka] settings of {path} or $INFINITIC_KAFKA)") from None
    if not reachable:
        raise fail(unreachable(bootstrap, f"in {path}, $INFINITIC_KAFKA or --bootstrap"))
    return bootstrap


def unreachable(bootstrap: str, where: str) -> str:
    """What every command says when Kafka does not answer."""
    return (
        f"Kafka at {bootstrap} does not answer (within {KAFKA_CHECK_TIMEOUT_S:g} s). Start a "
        "local one with `infinitic-streams kafka up` (or run everything with "
        f'`infinitic-streams dev`), or fix "bootstrap.servers" ({where}).'
    )


def engine_running(config: InfiniticConfig) -> bool | None:
    """Whether an engine is a member of the namespace's engine group; None when unknown."""
    group = Topics(config.namespace).engine_group
    try:
        return Admin(config.kafka).group_members(group, timeout=5.0) > 0
    except (KafkaUnavailable, KafkaAuthError):
        return None


def require_engine(config: InfiniticConfig) -> None:
    """Queries are answered by the engine: without one, fail now rather than after a timeout."""
    if engine_running(config) is False:
        raise fail(
            f"No engine runs for namespace {config.namespace!r} at {bootstrap_of(config)}, so "
            "nothing can answer. Start one with `infinitic-streams engine` (or "
            "`infinitic-streams dev`)."
        )
