"""A workflow's history for people (one event a line) and for programs (JSON-ready dicts).

Works on any event kind, including ones added later: fields are shown by name, payloads as
the JSON they are."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import typer

from infinitic_streams.cli.render import iso, shorten, to_json

# Event fields whose values are payload JSON, and fields left out of a line.
PAYLOAD_FIELDS = {"args", "result"}
HIDDEN_FIELDS = {"retry", "timeout", "meta", "traceback"}


def print_events(events: list[dict[str, Any]]) -> None:
    width = max((len(e["event"]) for e in events), default=0)
    for event in events:
        fields = "  ".join(event_fields(event))
        typer.echo(f"{iso(event['at'])}  {event['event']:<{width}}  {fields}".rstrip())


def event_fields(event: dict[str, Any]) -> Iterator[str]:
    """`key=value` of an event's telling fields."""
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
            key, text = key[:-3], iso(datetime.fromtimestamp(value / 1000, UTC))
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
        yield f"{key}={shorten(text)}"


def event_json(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key == "args" and isinstance(value, list):
            out[key] = [_payload_json(a) for a in value]
        elif key in PAYLOAD_FIELDS and isinstance(value, str):
            out[key] = _payload_json(value)
        else:
            out[key] = to_json(value)
    return out


def _payload_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
