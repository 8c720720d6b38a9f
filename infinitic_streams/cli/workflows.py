"""`infinitic-streams dispatch | describe | history | result`: a client, from the command
line (`actions.py` has the commands that act on workflows: signal, cancel, retry).

Only `dispatch` uses the workflow classes of the configuration, to check and encode the
arguments with their type hints (without the class it sends the JSON as given). The other
commands need nothing but `--bootstrap` and `--namespace`: payloads are self-describing JSON,
shown as they are.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from infinitic_streams import payload
from infinitic_streams.cli import history_view
from infinitic_streams.cli.common import (
    fail,
    load_settings,
    require_engine,
    require_kafka,
    warn,
    workflow_classes,
)
from infinitic_streams.cli.options import (
    DEFAULT_CONFIG,
    Bootstrap,
    ConfigPath,
    Format,
    JsonFlag,
    LogFormat,
    LogFormatOption,
    LogLevel,
    Namespace,
    Output,
    configure_logging,
    output_of,
)
from infinitic_streams.cli.render import emit, human_time, iso, print_rows, shorten
from infinitic_streams.client import InfiniticClient, WorkflowHandle, WorkflowInfo
from infinitic_streams.config import InfiniticConfig
from infinitic_streams.definitions import public_method
from infinitic_streams.errors import (
    InfiniticError,
    SerializationError,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowNotFound,
)
from infinitic_streams.workflows.workflow import Workflow

WorkflowId = Annotated[
    str, typer.Argument(metavar="ID", help="The workflow's id (printed by dispatch).")
]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the end; print the result.")]
Timeout = Annotated[
    float, typer.Option(min=0.0, metavar="SECONDS", help="How long to wait for the end.")
]


# -- commands --------------------------------------------------------------------------------


def dispatch(
    workflow_name: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="The workflow's @workflow name.")
    ],
    method: Annotated[str, typer.Argument(metavar="METHOD", help="The method to start.")] = "run",
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            "-a",
            metavar="JSON",
            help="One argument as JSON, once per parameter, in order: --arg '\"text\"' --arg 42. "
            "Checked against the parameter's type when the class is in the configuration.",
        ),
    ] = None,
    id: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="The workflow id (default: a new UUID); an existing id is joined, not rerun.",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TAG",
            help="A tag, repeatable: the workflow joins the group of its name and the tag, "
            "which signal, cancel and retry --tag TAG --workflow NAME act on.",
        ),
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 60.0,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Start a workflow; print its id, and with --wait its result."""
    configure_logging(log_level, log_format)
    settings = load_settings(config, namespace, bootstrap)
    cls = workflow_class(settings, config, workflow_name)
    args = _encoded_args(cls, workflow_name, method, arg or [])
    require_kafka(settings, config)
    with _client(settings) as client:
        engine = client.engine_running()  # also spares the dispatch its own check
        if engine is False:
            warn(
                f"No engine runs for namespace {settings.namespace!r} yet: the workflow starts "
                "when one does (`infinitic-streams engine` or `infinitic-streams dev`)."
            )
        joined = _existing(client, id, args) if id is not None and engine else None
        try:
            workflow_id = client.dispatch_encoded(workflow_name, method, args, id, tag or [])
        except InfiniticError as error:  # too large, Kafka refused it
            raise fail(f"Cannot dispatch: {error}") from None
        if output is Format.TABLE:
            if joined is not None:
                warn(joined)
            typer.echo(workflow_id)
        result = (
            wait_result(client.get_workflow(None, workflow_id), workflow_id, timeout)
            if wait
            else None
        )
    if output is not Format.TABLE:
        emit({"id": workflow_id, "joined": joined is not None, "result": result}, output)
    elif wait:
        typer.echo(json.dumps(result, ensure_ascii=False))


def describe(
    workflow_id: WorkflowId,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    json_flag: JsonFlag = False,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Show a workflow: status, arguments, result or error (with its traceback), pending work."""
    configure_logging(log_level, log_format)
    with engine_client(config, namespace, bootstrap) as client:
        info = answer(workflow_id, client.get_workflow(None, workflow_id).describe)
    output = output_of(output, json_flag)
    if output is Format.TABLE:
        _print_info(info)
    else:
        emit(info_json(info), output)


def history(
    workflow_id: WorkflowId,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    json_flag: JsonFlag = False,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Show what the engine recorded for a workflow, one event a line, oldest first."""
    configure_logging(log_level, log_format)
    with engine_client(config, namespace, bootstrap) as client:
        events = answer(workflow_id, client.get_workflow(None, workflow_id).history)
    output = output_of(output, json_flag)
    if output is Format.TABLE:
        history_view.print_events(events)
    else:
        emit([history_view.event_json(e) for e in events], output)


def result(
    workflow_id: WorkflowId,
    timeout: Timeout = 60.0,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Wait for an existing workflow to end; print its result as JSON (exit 1 if it failed)."""
    configure_logging(log_level, log_format)
    settings = load_settings(config, namespace, bootstrap)
    require_kafka(settings, config)
    with _client(settings) as client:
        if client.engine_running() is False:  # it may be starting: wait, as asked
            warn(f"No engine runs for namespace {settings.namespace!r} yet: waiting {timeout:g} s.")
        value = wait_result(client.get_workflow(None, workflow_id), workflow_id, timeout)
    if output is Format.TABLE:
        typer.echo(json.dumps(value, ensure_ascii=False))
    else:
        emit({"id": workflow_id, "result": value}, output)


# -- client and queries ----------------------------------------------------------------------


@contextmanager
def _client(settings: InfiniticConfig) -> Iterator[InfiniticClient]:
    try:
        client = InfiniticClient(
            settings.kafka, settings.namespace, settings.partitions, settings.max_payload_bytes
        )
    except InfiniticError as error:
        raise fail(f"Cannot start a client: {error}") from None
    with client:
        yield client


@contextmanager
def engine_client(
    config: Path,
    namespace: str | None,
    bootstrap: str | None,
    settings: InfiniticConfig | None = None,
) -> Iterator[InfiniticClient]:
    """A client for a command that asks the engine (with `settings` when the command loaded
    them already): each check on the way fails with a message naming its fix."""
    settings = settings or load_settings(config, namespace, bootstrap)
    require_kafka(settings, config)
    require_engine(settings)
    with _client(settings) as client:
        yield client


def answer(workflow_id: str, query: Any) -> Any:
    """Run a request of a handle (a query, a signal, a cancel); its errors become messages
    naming the fix."""
    try:
        return query()
    except TimeoutError as error:
        raise fail(str(error)) from None
    except WorkflowNotFound:
        raise fail(
            f"No workflow with id {workflow_id} in this namespace (or it ended and was "
            "forgotten). Check the id, and the namespace (--namespace)."
        ) from None
    except InfiniticError as error:
        raise fail(str(error)) from None


def wait_result(handle: WorkflowHandle, workflow_id: str, timeout: float) -> Any:
    try:
        return handle.result(timeout=timeout)
    except TimeoutError as error:
        raise fail(
            f"{error} It goes on: follow it with `infinitic-streams describe {workflow_id}`."
        ) from None
    except WorkflowFailed as error:
        raise fail(
            f"{error}\nSee `infinitic-streams history {workflow_id}`; once the cause is fixed, "
            f"`infinitic-streams retry {workflow_id}`."
        ) from None
    except WorkflowNotFound:
        raise fail(f"No workflow with id {workflow_id} in this namespace.") from None
    except (WorkflowCanceled, InfiniticError) as error:
        raise fail(str(error)) from None


def _existing(client: InfiniticClient, workflow_id: str, args: list[bytes]) -> str | None:
    """What to tell when `workflow_id` exists already (dispatch joins it); None if it does
    not."""
    try:
        info = client.get_workflow(None, workflow_id).describe()
    except (WorkflowNotFound, TimeoutError, InfiniticError):
        return None
    started = iso(info.started_at)
    text = f"Workflow {workflow_id} exists ({info.status}, started {started}): joined it"
    if list(info.args) != [json.loads(a) for a in args]:
        shown = ", ".join(json.dumps(a, ensure_ascii=False) for a in info.args)
        text += f"; its arguments differ from these: it was started with ({shorten(shown)})"
    return text + "."


# -- arguments -------------------------------------------------------------------------------


def _encoded_args(cls: type | None, name: str, method: str, raw: list[str]) -> list[bytes]:
    """The --arg values as payload JSON: checked against the method's hints with its class,
    else only checked to be JSON."""
    values = [parse_json(text, f"--arg #{i}", "--arg") for i, text in enumerate(raw, start=1)]
    if cls is None:
        return [json.dumps(v, ensure_ascii=False).encode() for v in values]
    try:
        function = public_method(cls, method)
    except TypeError:
        methods = ", ".join(_workflow_methods(cls))
        raise fail(f"Workflow {name} has no method {method!r}; it has: {methods}.") from None
    try:
        hints, _ = payload.hints_of(function)
    except SerializationError as error:
        raise fail(f"{name}.{method}: {error}") from None
    params = _parameters(function, list(hints))
    if len(raw) != len(hints):
        raise fail(
            f"{name}.{method}({', '.join(params)}) takes {len(hints)} argument(s), got "
            f"{len(raw)}: pass --arg JSON once for each, in order."
        )
    encoded = []
    for index, (text, hint) in enumerate(zip(raw, hints, strict=True), start=1):
        try:
            value = payload.decode(text.encode(), hint, path=f"--arg #{index}")
            encoded.append(payload.encode(value, hint, path=f"--arg #{index}"))
        except SerializationError as error:
            raise fail(f"{error}; the parameter is {params[index - 1]}") from None
    return encoded


def workflow_class(settings: InfiniticConfig, config: Path, name: str) -> type | None:
    """The class named `name` in the configuration; None without configured workflows (the
    arguments then go as given)."""
    classes = workflow_classes(settings, config) if config.exists() else {}
    if classes and name not in classes:
        raise fail(
            f"Unknown workflow {name!r}: [worker] workflows of {config} has "
            f"{', '.join(sorted(classes))}. Use one of those names, or add its class there."
        )
    return classes.get(name)


def parse_json(text: str, what: str, option: str) -> Any:
    """`text` (the value of `option`, named `what` in the message) as a JSON value."""
    try:
        return json.loads(text)
    except ValueError as error:
        raise fail(
            f"{what} is not JSON ({error}): {text!r}. A string needs quotes, "
            f"e.g. {option} '\"{text}\"'."
        ) from None


def _parameters(function: Any, hints: list[Any]) -> list[str]:
    """`name: type` of each parameter (hints resolved: no quoted annotations)."""
    params = [p.name for p in inspect.signature(function).parameters.values()]
    params = params[1:] if params[:1] == ["self"] else params
    return [f"{p}: {type_name(h)}" for p, h in zip(params, hints, strict=False)]


def type_name(hint: Any) -> str:
    if isinstance(hint, type) and not getattr(hint, "__args__", None):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _workflow_methods(cls: type) -> list[str]:
    """The public methods a workflow class adds to Workflow's (those that can be started)."""
    return sorted(
        name
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and not hasattr(Workflow, name)
    )


# -- output ----------------------------------------------------------------------------------

STATUS_COLORS = {
    "COMPLETED": typer.colors.GREEN,
    "RUNNING": typer.colors.YELLOW,
    "FAILED": typer.colors.RED,
    "CANCELED": typer.colors.MAGENTA,
}


def _print_info(info: WorkflowInfo) -> None:
    status = str(info.status)
    rows = [
        ("id", info.id),
        ("workflow", f"{info.name}.{info.method}"),
        ("status", typer.style(status, fg=STATUS_COLORS.get(status), bold=True)),
        ("started", human_time(info.started_at)),
        ("updated", human_time(info.updated_at)),
    ]
    if info.tags:
        rows.append(("tags", ", ".join(info.tags)))
    args = ", ".join(json.dumps(a, ensure_ascii=False) for a in info.args)
    rows.append(("args", shorten(f"({args})")))
    if status == "COMPLETED":
        rows.append(("result", shorten(json.dumps(info.result, ensure_ascii=False))))
    if info.error:
        rows.append(("error", info.error))
        if info.traceback:
            rows.append(("traceback", info.traceback.rstrip()))
        if status == "FAILED":
            rows.append(("", f"once fixed: `infinitic-streams retry {info.id}`"))
    if status == "RUNNING":
        rows.append(("pending", "\n".join(info.pending) or "nothing (about to move on)"))
    if info.children:
        rows.append(("children", _children_lines(info.children)))
    if waiting := {channel: n for channel, n in info.signals_waiting.items() if n}:
        lines = (f"{channel}: {n} not received yet" for channel, n in sorted(waiting.items()))
        rows.append(("signals", "\n".join(lines)))
    if info.run > 1:
        rows.append(("run", f"{info.run} (continued as new {info.run - 1} times)"))
    if info.patches:
        rows.append(("patches", ", ".join(info.patches)))
    print_rows(rows)


def _children_lines(children: list[tuple[str, str, Any]]) -> str:
    """One child a line: id, name and status in aligned columns."""
    id_width = max(len(child_id) for child_id, _, _ in children)
    name_width = max(len(name) for _, name, _ in children)
    return "\n".join(
        f"{child_id:<{id_width}}  {name:<{name_width}}  {status}"
        for child_id, name, status in children
    )


def info_json(info: WorkflowInfo) -> dict[str, Any]:
    """The fields of `describe -o json` (documented in the README: keep them stable)."""
    return {
        "id": info.id,
        "name": info.name,
        "method": info.method,
        "status": str(info.status),
        "started_at": iso(info.started_at),
        "updated_at": iso(info.updated_at),
        "tags": list(info.tags),
        "args": list(info.args),
        "result": info.result,
        "error": info.error,
        "traceback": info.traceback or None,
        "pending": list(info.pending),
        "children": [
            {"id": child_id, "name": name, "status": str(status)}
            for child_id, name, status in info.children
        ],
        "signals_waiting": dict(info.signals_waiting),
        "run": info.run,
        "patches": list(info.patches),
    }
