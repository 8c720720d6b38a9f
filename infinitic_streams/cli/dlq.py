"""`infinitic-streams dlq list [--follow]`: the dead letters of a namespace, readable.

Each dead letter is the input record as it was, with `infinitic.dlq.*` headers saying where it
came from and why it was set aside (see `streams/dead_letter.py`)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
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
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin, TopicMismatchError
from infinitic_streams.kafka.consumer import Consumer, Message, TopicPartition
from infinitic_streams.protocol import EnvelopeDecodeError, decode
from infinitic_streams.streams.dead_letter import DeadLetter
from infinitic_streams.topics import Topics

app = typer.Typer(help="Read the dead letters of a namespace.")
PREVIEW_CHARS = 60
OFFSET_BEGINNING = -2


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
    consumer = Consumer(settings.kafka, f"{topic}.reader.{uuid.uuid4().hex[:8]}")  # never commits
    try:
        letters = _read(consumer, topic, partitions, follow)
        _show(letters, output, follow)
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, partitions: int, follow: bool) -> Any:
    """Dead letters from the start of `topic`: up to its current end, or on and on."""
    if follow:
        consumer.subscribe([topic])  # a topic created later is picked up
        ends: dict[int, int] = {}
    else:
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        consumer.assign(tps)
        ends = {p: consumer.end_offset(TopicPartition(topic, p)) for p in range(partitions)}
        ends = {p: end for p, end in ends.items() if end > 0}
    while follow or ends:
        for message in consumer.consume(100, 0.5):
            yield _letter(message)
        if ends:  # positions, not offsets: transaction markers take offsets too
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            for position in positions:
                if position.offset >= ends[position.partition]:
                    del ends[position.partition]


def _letter(message: Message) -> dict[str, Any]:
    where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
    try:
        letter = DeadLetter.of_record(message.key(), message.value(), message.headers())
    except ValueError as error:
        return {
            "at": None,
            "reason": f"(not a dead letter: {error})",
            "source": None,
            "dlq": where,
            "key": _text(message.key()),
            "payload": _preview(message.value()),
        }
    return {
        "at": iso(datetime.fromtimestamp(letter.at_ms / 1000, UTC)),
        "reason": letter.reason,
        "source": f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}",
        "dlq": where,
        "key": _text(letter.key),
        "payload": _preview(letter.value),
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


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def _preview(value: bytes | None) -> str:
    """What the payload is: the engine message it holds, else its first characters."""
    if value is None:
        return "(no value)"
    try:
        message = decode(value).message
    except EnvelopeDecodeError:
        text = value[:PREVIEW_CHARS].decode("utf-8", "replace")
        printable = "".join(c if c.isprintable() and c != "\ufffd" else "." for c in text)
        more = f"… ({len(value)} bytes)" if len(value) > PREVIEW_CHARS else ""
        return printable + more
    workflow = getattr(message, "workflow_id", None)
    return f"{type(message).__name__}" + (f" of workflow {workflow}" if workflow else "")
