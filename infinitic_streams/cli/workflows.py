"""`infinitic-streams dispatch | describe | history | retry`: a client, from the command line.

Workflow classes come from [worker].workflows of the configuration: `dispatch` finds one by its
@workflow name; the others need a class only to build the client's handle (the engine answers
by id), so they take the workflow's own class when describe names it, else the first one.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from infinitic_streams import payload
from infinitic_streams.cli.common import (
    DEFAULT_CONFIG,
    ConfigPath,
    engine_running,
    fail,
    load_config,
    require_engine,
    require_kafka,
    require_workflows,
    warn,
)
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

WorkflowId = Annotated[str, typer.Argument(help="The workflow's id (printed by dispatch).")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON (for programs).")]
Timeout = Annotated[float, typer.Option(min=0.0, help="With --wait: seconds to wait for the end.")]
SHOWN_CHARS = 100  # of a payload in human output; --json prints everything


# -- commands --------------------------------------------------------------------------------


def dispatch(
    workflow_name: Annotated[
        str, typer.Argument(help="The workflow's @workflow name (a class of worker.workflows).")
    ],
    method: Annotated[str, typer.Argument(help="The workflow method to start.")] = "run",
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            "-a",
            help="One argument as JSON, once per parameter, in order: --arg '\"text\"' --arg 42. "
            "Decoded with the parameter's type hint, like any payload.",
        ),
    ] = None,
    id: Annotated[
        str | None,
        typer.Option(help="The workflow id (default: a new UUID); an existing id is not rerun."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag; repeatable.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the end and print the result.")
    ] = False,
    timeout: Timeout = 60.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Start a workflow; print its id, and with --wait its result as JSON."""
    settings = load_config(config)
    classes = require_workflows(settings, config, "dispatch finds workflows there by name")
    cls = classes.get(workflow_name)
    if cls is None:
        raise fail(
            f"Unknown workflow {workflow_name!r}: [worker] workflows of {config} has "
            f"{', '.join(sorted(classes))}. Use one of those names, or add its class there."
        )
    try:
        function = public_method(cls, method)
    except TypeError:
        methods = ", ".join(_workflow_methods(cls))
        raise fail(
            f"Workflow {workflow_name} has no method {method!r}; it has: {methods}."
        ) from None
    try:
        param_hints, return_hint = payload.hints_of(function)
    except SerializationError as error:
        raise fail(f"{workflow_name}.{method}: {error}") from None
    args = _decode_args(workflow_name, method, function, param_hints, arg or [])
    require_kafka(settings, config)
    if engine_running(settings) is False:
        warn(
            f"No engine runs for namespace {settings.namespace!r} yet: the workflow starts "
            "when one does (`infinitic-streams engine` or `infinitic-streams dev`)."
        )
    with _client(settings) as client:
        try:
            handle = client.dispatch(function, *args, id=id, tags=tag or [])
        except SerializationError as error:
            raise fail(f"Cannot encode the arguments: {error}") from None
        except InfiniticError as error:  # too large, Kafka refused it
            raise fail(f"Cannot dispatch: {error}") from None
        typer.echo(handle.id)
        if wait:
            _print_result(handle, handle.id, return_hint, timeout)


def describe(
    workflow_id: WorkflowId,
    json_output: JsonOutput = False,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Show a workflow: status, method, start and last update, result or error, pending work."""
    why = "describe needs one (any) to query the engine"
    with _engine_client(config, why) as (client, classes):
        info, cls = _describe(client, classes, workflow_id, config)
    if json_output:
        typer.echo(json.dumps(_info_json(info, cls), indent=2))
    else:
        _print_info(info, cls, config)


def history(
    workflow_id: WorkflowId,
    json_output: JsonOutput = False,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Show what the engine recorded for a workflow, one event a line, oldest first."""
    with _engine_client(config, "history needs one (any) to query the engine") as (client, classes):
        handle = client.get_workflow(next(iter(classes.values())), workflow_id)
        events = _answer(workflow_id, config, handle.history)
    if json_output:
        typer.echo(json.dumps([_event_json(e) for e in events], indent=2))
        return
    width = max((len(e["event"]) for e in events), default=0)
    for event in events:
        fields = "  ".join(_event_fields(event))
        typer.echo(f"{_time(event['at'])}  {event['event']:<{width}}  {fields}".rstrip())


def retry(
    workflow_id: WorkflowId,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the end and print the result.")
    ] = False,
    timeout: Timeout = 60.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Resume a FAILED workflow: its failed task runs again, with the code deployed now."""
    with _engine_client(config, "retry needs one (any) to reach the engine") as (client, classes):
        info, cls = _describe(client, classes, workflow_id, config)
        if info.status != "FAILED":
            raise fail(
                f"Workflow {workflow_id} is {info.status}: only a FAILED workflow can be retried."
            )
        handle = client.get_workflow(cls or next(iter(classes.values())), workflow_id)
        handle.retry()
        typer.echo(f"Retrying {workflow_id} ({info.name}.{info.method}), failed with: {info.error}")
        if wait:
            if cls is None:
                raise fail(_unknown_class(info.name, config) + " to wait for its result")
            hint = payload.hints_of(public_method(cls, info.method))[1]
            _print_result(handle, workflow_id, hint, timeout)


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
def _engine_client(config: Path, why: str) -> Iterator[tuple[InfiniticClient, dict[str, type]]]:
    """A client, and the workflow classes of `config`, for a command that asks the engine (`why`
    says what the classes are for): each check on the way fails with a message naming its fix."""
    settings = load_config(config)
    classes = require_workflows(settings, config, why)
    require_kafka(settings, config)
    require_engine(settings)
    with _client(settings) as client:
        yield client, classes


def _answer(workflow_id: str, config: Path, query: Any) -> Any:
    """Run a query of a handle; its errors become messages naming the fix."""
    try:
        return query()
    except SerializationError:
        raise  # a result that does not decode with the handle's class: the caller decides
    except TimeoutError as error:
        raise fail(str(error)) from None
    except WorkflowNotFound:
        raise fail(
            f"No workflow with id {workflow_id} in this namespace (or it ended and was "
            f"forgotten). Check the id, and the namespace in {config}."
        ) from None
    except InfiniticError as error:
        raise fail(str(error)) from None


def _describe(
    client: InfiniticClient, classes: dict[str, type], workflow_id: str, config: Path
) -> tuple[WorkflowInfo, type | None]:
    """The workflow's info, with the result decoded by its own class; (info, None) when its
    class is not in the configuration (then the result is not decoded: info.result is None).

    A handle decodes the result with its class's hints, so: ask with the first class; if the
    answer names another configured class, ask again with that one."""
    for cls in classes.values():
        try:
            info = _answer(workflow_id, config, client.get_workflow(cls, workflow_id).describe)
        except (TypeError, SerializationError):  # the result does not decode with this class
            continue
        own = classes.get(info.name)
        if own is cls:
            return info, cls
        if own is not None:
            handle = client.get_workflow(own, workflow_id)
            return _answer(workflow_id, config, handle.describe), own
        return dataclasses.replace(info, result=None), None
    raise fail(
        f"Workflow {workflow_id} has a result that no class of [worker] workflows of {config} "
        "decodes: add its class there."
    )


def _print_result(handle: WorkflowHandle, workflow_id: str, hint: Any, timeout: float) -> None:
    try:
        result = handle.result(timeout=timeout)
    except TimeoutError:
        raise fail(
            f"Workflow {workflow_id} did not end within {timeout:g} s; it goes on. Follow it "
            f"with `infinitic-streams describe {workflow_id}`."
        ) from None
    except WorkflowFailed as error:
        raise fail(
            f"{error}\nSee `infinitic-streams history {workflow_id}`; once the cause is fixed, "
            f"`infinitic-streams retry {workflow_id}`."
        ) from None
    except (WorkflowCanceled, InfiniticError) as error:
        raise fail(str(error)) from None
    typer.echo(payload.encode(result, hint, path="result").decode())


def _decode_args(
    name: str, method: str, function: Any, hints: list[Any], raw: list[str]
) -> list[Any]:
    params = _parameters(function, hints)
    if len(raw) != len(hints):
        raise fail(
            f"{name}.{method}({', '.join(params)}) takes {len(hints)} argument(s), got "
            f"{len(raw)}: pass --arg JSON once for each, in order."
        )
    args = []
    for index, (text, hint) in enumerate(zip(raw, hints, strict=True), start=1):
        try:
            json.loads(text)
        except ValueError as error:
            raise fail(
                f"--arg #{index} is not JSON ({error}): {text!r}. A string needs quotes, "
                f"e.g. --arg '\"{text}\"'."
            ) from None
        try:
            args.append(payload.decode(text.encode(), hint, path=f"--arg #{index}"))
        except SerializationError as error:
            raise fail(f"{error}; the parameter is {params[index - 1]}") from None
    return args


def _parameters(function: Any, hints: list[Any]) -> list[str]:
    """`name: type` of each parameter (hints resolved: no quoted annotations)."""
    params = [p.name for p in inspect.signature(function).parameters.values()]
    params = params[1:] if params[:1] == ["self"] else params
    return [f"{p}: {_type_name(h)}" for p, h in zip(params, hints, strict=False)]


def _type_name(hint: Any) -> str:
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


def _unknown_class(name: str, config: Path) -> str:
    return f"{name} is not a class of [worker] workflows of {config}: add it there"


# -- output ----------------------------------------------------------------------------------

STATUS_COLORS = {
    "COMPLETED": typer.colors.GREEN,
    "RUNNING": typer.colors.YELLOW,
    "FAILED": typer.colors.RED,
    "CANCELED": typer.colors.MAGENTA,
}


def _print_info(info: WorkflowInfo, cls: type | None, config: Path) -> None:
    status = str(info.status)
    elapsed = (info.updated_at - info.started_at).total_seconds()
    rows = [
        ("id", info.id),
        ("workflow", f"{info.name}.{info.method}"),
        ("status", typer.style(status, fg=STATUS_COLORS.get(status), bold=True)),
        ("started", _time(info.started_at)),
        ("updated", f"{_time(info.updated_at)} ({elapsed:.3f} s later)"),
    ]
    if info.tags:
        rows.append(("tags", ", ".join(info.tags)))
    if status == "COMPLETED":
        if cls is None:
            rows.append(("result", f"(not shown: {_unknown_class(info.name, config)})"))
        else:
            rows.append(("result", _shorten(_result_json(info, cls) or "null")))
    if info.error:
        rows.append(("error", info.error))
        rows.append(("", f"once fixed: `infinitic-streams retry {info.id}`"))
    if status == "RUNNING":
        rows.append(("pending", "; ".join(info.pending) or "nothing (about to move on)"))
    for key, value in rows:
        typer.echo(f"{key:<9}{value}")


def _result_json(info: WorkflowInfo, cls: type | None) -> str | None:
    if cls is None or str(info.status) != "COMPLETED":
        return None
    hint = payload.hints_of(public_method(cls, info.method))[1]
    return payload.encode(info.result, hint, path="result").decode()


def _info_json(info: WorkflowInfo, cls: type | None) -> dict[str, Any]:
    result = _result_json(info, cls)
    return {
        "id": info.id,
        "name": info.name,
        "method": info.method,
        "status": str(info.status),
        "started_at": info.started_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
        "tags": list(info.tags),
        "result": None if result is None else json.loads(result),
        "error": info.error,
        "pending": list(info.pending),
    }


# Event fields whose values are payload JSON (shown as JSON), and fields left out of a line.
PAYLOAD_FIELDS = {"args", "result"}
HIDDEN_FIELDS = {"retry", "timeout", "meta", "traceback"}


def _event_fields(event: dict[str, Any]) -> Iterator[str]:
    """`key=value` of an event's telling fields (any event kind, including future ones)."""
    fields = {k: v for k, v in event.items() if k not in ("at", "event")}
    if "service" in fields and "method" in fields:
        yield f"{fields.pop('service')}.{fields.pop('method')}"
    for key, value in fields.items():
        if key in HIDDEN_FIELDS or value is None or value == [] or value == {} or value is False:
            continue
        if key == "args":
            text = f"({', '.join(value)})"
        elif key in PAYLOAD_FIELDS:
            text = str(value)
        elif key.endswith("_ms") and isinstance(value, int):
            key, text = key[:-3], _time(datetime.fromtimestamp(value / 1000, UTC))
        elif key.endswith("_in") and isinstance(value, int | float):
            text = f"{value:.3g}s"
        elif dataclasses.is_dataclass(value) and hasattr(value, "type_name"):
            text = f"{value.type_name}: {getattr(value, 'message', '')}"
        elif isinstance(value, Enum):
            text = str(value.value)
        elif value is True:
            yield key
            continue
        else:
            text = str(value)
        yield f"{key}={_shorten(text)}"


def _event_json(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key == "args" and isinstance(value, list):
            out[key] = [_payload_json(a) for a in value]
        elif key in PAYLOAD_FIELDS and isinstance(value, str):
            out[key] = _payload_json(value)
        else:
            out[key] = _plain(value)
    return out


def _payload_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}… ({len(text)} chars)"
