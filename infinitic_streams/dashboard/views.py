"""What pages show, as text: times, statuses, values, history events. Plain functions, used by
the templates as filters (`app.py` registers them)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote

SHORT_CHARS = 120
# Event fields whose values are payload JSON; fields a timeline line leaves out.
PAYLOAD_FIELDS = {"args", "result"}
HIDDEN_FIELDS = {"retry", "timeout", "meta", "traceback"}
STATUSES = ("RUNNING", "FAILED", "COMPLETED", "CANCELED")


def status_text(status: Any) -> str:
    """`WorkflowStatus.FAILED` or "FAILED" -> "FAILED"."""
    return str(getattr(status, "value", status) or "")


def when(moment: datetime | None) -> str:
    """`2026-01-05 12:00:01 UTC`: absolute, so that a page that is not refreshed stays right."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """`5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`."""
    if moment is None:
        return ""
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def shorten(text: str, limit: int = SHORT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def as_json(value: Any) -> str:
    """A value as indented JSON (what it is on the wire); anything else as its text."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def event_kind(event: dict[str, Any]) -> str:
    """A CSS class for a history event: how it went (good, bad, warn, plain)."""
    name = event.get("event", "")
    status = status_text(event.get("status"))
    if name in ("Ended", "ChildFinished"):
        return {"COMPLETED": "good", "CANCELED": "warn"}.get(status, "bad")
    if name == "AttemptFailed":
        return "warn" if event.get("retry_in") is not None else "bad"
    if name in ("TaskGaveUp", "CallRefused"):
        return "bad"
    if name in ("TaskSucceeded", "Retried", "SignalReceived"):
        return "good"
    return "plain"


def event_fields(event: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, text) of an event's telling fields, payloads as the JSON they are."""
    fields = {k: v for k, v in event.items() if k not in ("at", "event")}
    if "service" in fields and "method" in fields:
        yield "task", f"{fields.pop('service')}.{fields.pop('method')}"
    for key, value in fields.items():
        if key in HIDDEN_FIELDS or value is None or value in ([], {}, (), False, ""):
            continue
        yield _field(key, value)


def _field(key: str, value: Any) -> tuple[str, str]:
    if key == "args" and isinstance(value, list | tuple):
        return key, shorten(f"({', '.join(str(a) for a in value)})")
    if key.endswith("_ms") and isinstance(value, int):
        return key[:-3], when(datetime.fromtimestamp(value / 1000, UTC))
    if key.endswith("_in") and isinstance(value, int | float):
        return key, f"{value:.3g} s"
    if dataclasses.is_dataclass(value) and hasattr(value, "type_name"):
        return key, shorten(f"{value.type_name}: {getattr(value, 'message', '')}")
    if isinstance(value, Enum):
        return key, str(value.value)
    if value is True:
        return key, "yes"
    return key, shorten(str(value))


def event_traceback(event: dict[str, Any]) -> str:
    """The traceback an event carries (a failed attempt's), if any."""
    for value in event.values():
        if dataclasses.is_dataclass(value) and getattr(value, "traceback", ""):
            return str(value.traceback)
    found = event.get("traceback")
    return found if isinstance(found, str) else ""


def offset_from(moment: datetime, start: datetime | None) -> str:
    """`+1.25 s` from the workflow's start, for a timeline."""
    if start is None:
        return ""
    seconds = (moment - start).total_seconds()
    if seconds < 60:
        return f"+{seconds:.3g} s"
    if seconds < 3600:
        return f"+{seconds / 60:.3g} min"
    return f"+{seconds / 3600:.3g} h"


def rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}/s" if value >= 0.01 else "0/s"


def partition_ranges(partitions: Iterable[tuple[str, int]]) -> list[str]:
    """[("ns.engine", 0), ("ns.engine", 1), ("ns.engine", 3)] -> ["ns.engine[0-1,3]"]."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [f"{topic}[{_ranges(sorted(ps))}]" for topic, ps in sorted(by_topic.items())]


def _ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def quoted(value: Any) -> str:
    """A value for a query string (every reserved character escaped)."""
    return quote(str(value), safe="")


FILTERS = {
    "q": quoted,
    "when": when,
    "ago": ago,
    "iso": iso,
    "shorten": shorten,
    "as_json": as_json,
    "status_text": status_text,
    "event_kind": event_kind,
    "rate": rate,
    "partition_ranges": partition_ranges,
}
