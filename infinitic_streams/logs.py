"""Logging of infinitic-streams: one call sets it up, secrets never reach a log line.

The library logs on the `infinitic_streams.*` loggers and installs no handler of its own (an
application decides where logs go). `configure()` is that decision for the CLI and for users
who want the project's format:

    from infinitic_streams import logs
    logs.configure("INFO")            # 2026-01-05 10:00:00,123 INFO infinitic_streams.worker: ...
    logs.configure("DEBUG", "json")   # {"time": "2026-01-05T09:00:00.123+00:00", "level": ...}

Secrets: no line of the project prints the `[kafka]` settings (only their bootstrap servers).
As a safety net, `SecretFilter` (on the handler `configure` installs; add it to your own
handlers too) masks the values of secret settings (`sasl.password`, `ssl.key.password`,
`sasl.oauthbearer.client.secret`, `sasl.jaas.config`, ...) wherever they appear in a line or in
an exception's text: those the project's Kafka clients were built with (`remember_secrets`),
and any `key=value` or `"key": "value"` pair whose key names a secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# A setting is secret when its name contains one of these.
SECRET_WORDS = ("password", "secret", "jaas", "oauthbearer.config", "key.pem", "private")
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words everywhere

_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRET_PAIR = re.compile(
    r"""(?P<key>["']?[\w.-]*(?:"""
    + "|".join(re.escape(word) for word in SECRET_WORDS)
    + r""")[\w.-]*["']?\s*[:=]\s*)(?P<quote>["']?)(?P<value>[^\s"',}\]]+)""",
    re.IGNORECASE,
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def configure(
    level: str | int = "INFO", fmt: str = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Log at `level` and above to `stream` (stderr by default), as `fmt`: "text" (time,
    level, logger, message) or "json" (one object per line). Calling it again replaces the
    handler it installed before; handlers installed by others are left alone. Returns the
    handler (with a `SecretFilter`)."""
    numeric = level_of(level)
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SecretFilter())
    handler.set_name("infinitic_streams.logs")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == handler.get_name()]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


def level_of(level: str | int) -> int:
    """The numeric logging level of a name (any case) or number; `ValueError` naming the
    accepted names otherwise."""
    if isinstance(level, int):
        return level
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    return numeric


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the exception's
    text if any, and the fields given with `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and name not in entry:
                entry[name] = value
        return json.dumps(entry, ensure_ascii=False, default=str)


class SecretFilter(logging.Filter):
    """Masks secret values in a record's message and exception text (see the module's doc).
    It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def remember_secrets(settings: Mapping[str, Any]) -> None:
    """Keep the values of the secret settings of `settings`, so that `mask` hides them."""
    values = {
        str(value)
        for key, value in settings.items()
        if is_secret_key(str(key)) and len(str(value)) >= MIN_SECRET_LENGTH
    }
    if values - _secrets:
        with _secrets_lock:
            _secrets.update(values)


def mask(text: str) -> str:
    """`text` with every remembered secret value and every secret `key=value` masked."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return _SECRET_PAIR.sub(_mask_pair, text)


def _mask_pair(match: re.Match[str]) -> str:
    return f"{match['key']}{match['quote']}{MASK}"


def one_line(text: str, limit: int = 500) -> str:
    """`text` on one line (its lines joined with " | "), cut at `limit` characters: for error
    messages inside a log line."""
    joined = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    if len(joined) <= limit:
        return joined
    return f"{joined[:limit]}... ({len(joined) - limit} more characters)"


def numbers(values: list[int] | set[int]) -> str:
    """Partition numbers as ranges, for a log line: [0, 1, 2, 3, 5] -> "0-3, 5"."""
    ordered = sorted(set(values))
    if not ordered:
        return "none"
    parts, start, last = [], ordered[0], ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == last + 1:
            last = value
            continue
        parts.append(str(start) if start == last else f"{start}-{last}")
        if value is not None:
            start = last = value
    return ", ".join(parts)
