"""`infinitic-streams dlq list [--follow]`: the dead letters of a namespace, readable.

Each dead letter is the input record as it was, with `infinitic.dlq.*` headers saying where it
came from and why it was set aside (see `streams/dead_letter.py`); reading them is
`dead_letters.py`'s, shared with the dashboard."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from infinitic_streams.cli.common import fail, load_settings, require_kafka
from infinitic_streams.cli.options import (
    DEFAULT_CONFIG,
    Bootstrap,
    ConfigPath,
    Format,
    Namespace,
    Output,
)
from infinitic_streams.cli.render import emit, human_time, iso, print_table, relative, shorten
from infinitic_streams.dead_letters import Letter, read, reader
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin, TopicMismatchError
from infinitic_streams.topics import Topics

app = typer.Typer(help="Read the dead letters of a namespace.")


@app.command("list")
def list_letters(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new ones, until Ctrl-C.")
    ] = False,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
) -> None:
    """List the dead letters: when, where from, why, and a preview of the payload.

    -o json prints one JSON object per line (also with --follow)."""
    settings = load_settings(config, namespace, bootstrap)
    address = require_kafka(settings, config)
    topic = Topics(settings.namespace).dlq
    try:
        partitions = Admin(settings.kafka).topic_partitions((topic,), timeout=3.0)[topic]
    except TopicMismatchError:
        if not follow:
            typer.echo(f"No dead letters in namespace {settings.namespace!r} ({topic} is absent).")
            return
        partitions = 0
    except InfiniticError as error:
        raise fail(f"Cannot read {topic} at {address}: {error}") from None
    consumer = reader(settings.kafka, topic)  # never commits
    try:
        letters = (_row(letter) for letter in read(consumer, topic, partitions, follow))
        _show(letters, output, follow)
    finally:
        consumer.close()


def _row(letter: Letter) -> dict[str, Any]:
    return {
        "at": iso(letter.at) if letter.at else None,
        "reason": letter.reason,
        "source": letter.source,
        "dlq": letter.where,
        "key": letter.key_text,
        "payload": letter.preview,
    }


def _show(letters: Any, output: Format, follow: bool) -> None:
    if output is not Format.TABLE:
        for letter in letters:
            if output is Format.JSON:
                typer.echo(json.dumps(letter, ensure_ascii=False))
            else:
                emit([letter], output)
        return
    headers = ["at", "source", "key", "reason", "payload"]
    if follow:
        for letter in letters:
            at = _parse(letter["at"])
            typer.echo(f"{human_time(at) if at else '?'}  {letter['source']}  {letter['key']}")
            typer.echo(f"  reason:  {letter['reason'].strip()}")
            typer.echo(f"  payload: {letter['payload']}")
        return
    rows = [
        [
            relative(at) if (at := _parse(letter["at"])) else "?",
            str(letter["source"]),
            str(letter["key"]),
            shorten(letter["reason"].strip().splitlines()[-1] if letter["reason"] else ""),
            letter["payload"],
        ]
        for letter in letters
    ]
    if not rows:
        typer.echo("No dead letters.")
        return
    print_table(headers, rows)
    typer.echo(f"\n{len(rows)} dead letter(s); the whole reasons: -o json (or -o yaml).")


def _parse(at: str | None) -> datetime | None:
    return datetime.fromisoformat(at) if at else None
