"""What the commands that read `infinitic.toml` share: the `--config` option, loading and
checking the file, importing the classes it names, and checking that Kafka and the engine are
there before talking to them. Every failure prints what is wrong and how to fix it, in red, and
exits with code 1."""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from infinitic_streams.config import ConfigError, InfiniticConfig, WorkerConfig, import_object
from infinitic_streams.definitions import service_spec, workflow_spec
from infinitic_streams.kafka.admin import Admin, is_reachable
from infinitic_streams.kafka.errors import KafkaAuthError, KafkaUnavailable
from infinitic_streams.topics import Topics
from infinitic_streams.workflows.workflow import Workflow

DEFAULT_CONFIG = Path("infinitic.toml")
ConfigPath = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="INFINITIC_CONFIG",
        help="The configuration file. `module:Class` references in it are imported with its "
        "directory and the current directory on the Python path.",
    ),
]

# Client commands give up quickly when Kafka does not answer (a metadata request).
KAFKA_CHECK_TIMEOUT_S = 3.0
# Engines and workers wait a little longer: a broker may be starting next to them.
SERVER_KAFKA_CHECK_TIMEOUT_S = 10.0

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


def load_config(path: Path) -> InfiniticConfig:
    """The configuration at `path`, checked; a missing or wrong file fails naming the fix."""
    if not path.exists():
        raise fail(
            f"No configuration file {path} (in {Path.cwd()}). Create one, for example:\n\n"
            f"{EXAMPLE_CONFIG}\n\nor pass --config PATH (or set $INFINITIC_CONFIG)."
        )
    _check_worker_keys(path)
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


def _check_worker_keys(path: Path) -> None:
    """A misspelt [worker] key fails naming the known ones (the load would only say it is
    unexpected). Other errors are left to the load."""
    try:
        worker = tomllib.loads(path.read_text()).get("worker")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    if isinstance(worker, dict):
        known = [f.name for f in dataclasses.fields(WorkerConfig)]
        for key in worker:
            if key not in known:
                raise fail(
                    f"Invalid configuration {path}: unknown key {key!r} in [worker]; the keys "
                    f"are {', '.join(known)}."
                )


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


def require_kafka(config: InfiniticConfig, path: Path, timeout: float | None = None) -> str:
    """The bootstrap servers, once a broker there answered with the configured settings; else
    fail naming the fixes (refused credentials say so)."""
    bootstrap = bootstrap_of(config)
    timeout = KAFKA_CHECK_TIMEOUT_S if timeout is None else timeout
    try:
        reachable = is_reachable(config.kafka, timeout)
    except KafkaAuthError as error:
        raise fail(f"{error}\n(the [kafka] settings of {path} or $INFINITIC_KAFKA)") from None
    if not reachable:
        raise fail(
            f"Kafka at {bootstrap} does not answer (within {timeout:g} s). Start a local one "
            "with `infinitic-streams kafka up` (or run everything with `infinitic-streams "
            f'dev`), or fix "bootstrap.servers" under [kafka] in {path} or $INFINITIC_KAFKA.'
        )
    return bootstrap


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
