"""How commands print: JSON and YAML for programs (stable fields), tables and human times
for people ("2026-12-01T10:00:00.000Z (3 s ago)")."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import typer

from infinitic_streams.cli.options import Format

SHOWN_CHARS = 100  # of a value in a table; json and yaml print everything
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def emit(data: Any, output: Format) -> None:
    """Print `data` (JSON-ready: dicts, lists, str, numbers, bools, None) as json or yaml."""
    if output is Format.YAML:
        typer.echo("\n".join(yaml_lines(data)))
    else:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def yaml_lines(value: Any, indent: int = 0) -> Iterator[str]:
    """Block-style YAML; every string is double-quoted JSON (valid YAML, never ambiguous)."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        for key, item in value.items():
            name = key if _PLAIN_KEY.match(str(key)) else json.dumps(str(key))
            if _is_block(item):
                yield f"{pad}{name}:"
                yield from yaml_lines(item, indent + 2)
            else:
                yield f"{pad}{name}: {_scalar(item)}"
    elif isinstance(value, list) and value:
        for item in value:
            if _is_block(item):
                lines = list(yaml_lines(item, indent + 2))
                yield f"{pad}- {lines[0].lstrip()}"
                yield from lines[1:]
            else:
                yield f"{pad}- {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(value)}"


def _is_block(value: Any) -> bool:
    return isinstance(value, dict | list) and bool(value)


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value, ensure_ascii=False)


def iso(at: datetime) -> str:
    """ISO 8601 in UTC, to the millisecond: 2026-12-01T10:00:00.000Z."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def relative(at: datetime, now: datetime | None = None) -> str:
    """ "3 s ago", "in 2 min", "1 h ago", "5 d ago"."""
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "now"
    for unit, length in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if size >= length:
            amount = f"{int(size // length)} {unit}"
            return f"{amount} ago" if seconds > 0 else f"in {amount}"
    raise AssertionError("unreachable")


def human_time(at: datetime, now: datetime | None = None) -> str:
    return f"{iso(at)} ({relative(at, now)})"


def shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}… ({len(text)} chars)"


def print_rows(rows: Sequence[tuple[str, str]]) -> None:
    """`key  value` lines, the values aligned (a multi-line value is indented)."""
    width = max((len(key) for key, _ in rows), default=0) + 2
    for key, value in rows:
        first, *rest = str(value).splitlines() or [""]
        typer.echo(f"{key:<{width}}{first}".rstrip())
        for line in rest:
            typer.echo(f"{'':<{width}}{line}".rstrip())


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns like `kubectl get`: upper-case headers, two spaces between columns."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in [[h.upper() for h in headers], *rows]:
        typer.echo("  ".join(f"{cell:<{w}}" for cell, w in zip(line, widths, strict=True)).rstrip())


def to_json(value: Any) -> Any:
    """Datetimes as ISO 8601, enums as their values, dataclasses as objects, tuples as lists:
    for json and yaml output."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value
