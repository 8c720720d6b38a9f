"""How the CLI prints for programs and people (no Kafka)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from infinitic_streams.cli.render import iso, relative, yaml_lines

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def test_yaml_is_block_style_with_json_scalars() -> None:
    data = {"id": "w1", "args": ["a", 2], "result": None, "tags": [], "error": {"type": "X"},
            "odd key": True, "rows": [{"a": 1, "b": [1]}]}  # fmt: skip
    assert list(yaml_lines(data)) == [
        'id: "w1"',
        "args:",
        '  - "a"',
        "  - 2",
        "result: null",
        "tags: []",
        "error:",
        '  type: "X"',
        '"odd key": true',
        "rows:",
        "  - a: 1",
        "    b:",
        "      - 1",
    ]


def test_yaml_strings_are_never_ambiguous() -> None:
    (line,) = yaml_lines({"v": "yes: no # not a comment"})
    assert json.loads(line.split(": ", 1)[1]) == "yes: no # not a comment"


def test_times_are_iso_8601_and_relative() -> None:
    assert iso(NOW) == "2026-12-01T10:00:00.000Z"
    assert relative(NOW - timedelta(seconds=3), NOW) == "3 s ago"
    assert relative(NOW - timedelta(minutes=2, seconds=5), NOW) == "2 min ago"
    assert relative(NOW + timedelta(hours=5), NOW) == "in 5 h"
    assert relative(NOW - timedelta(days=3), NOW) == "3 d ago"
    assert relative(NOW, NOW) == "now"
