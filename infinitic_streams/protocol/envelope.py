"""Wire format of every message: a 4-byte header, then the Avro body.

    b"IS" | schema version (unsigned 16-bit, big-endian) | fastavro schemaless binary of Envelope

The version names the writer schema `avro/envelope/v<version>.avsc`. `decode` reads the body with
that schema and resolves it into the current one (Avro schema resolution), so envelopes written by
older builds stay readable, while envelopes from newer builds are refused with a clear error.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from infinitic_streams.protocol._records import ENVELOPE, AvroRecord
from infinitic_streams.protocol.errors import EnvelopeDecodeError
from infinitic_streams.protocol.messages import Envelope
from infinitic_streams.protocol.schemas import DEFAULT_SCHEMAS, ParsedSchema, SchemaSet

MAGIC = b"IS"
_HEADER = struct.Struct(">2sH")
HEADER_SIZE = _HEADER.size


def encode(envelope: Envelope) -> bytes:
    """The bytes of `envelope`, written with the current schema."""
    return encode_record(ENVELOPE.to_record(envelope))


def decode(data: bytes) -> Envelope:
    """The envelope in `data`; raises EnvelopeDecodeError, and only that, if it cannot be read."""
    record = decode_record(data)
    try:
        return ENVELOPE.from_record(record)
    except Exception as exc:
        # Unreachable while messages.py mirrors the current schema (a test checks it).
        raise EnvelopeDecodeError(
            f"envelope does not fit this build's message classes: {exc!r}"
        ) from exc


def to_record(envelope: Envelope) -> AvroRecord:
    """`envelope` as the dict fastavro writes (unions of records in tuple notation)."""
    return ENVELOPE.to_record(envelope)


def encode_record(
    record: AvroRecord, *, version: int | None = None, schemas: SchemaSet = DEFAULT_SCHEMAS
) -> bytes:
    """Header plus Avro body of a raw `record`, written with schema `version` (default current)."""
    if version is None:
        version = schemas.current_version
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC, version))
    fastavro.schemaless_writer(buffer, schemas.writer_schema(version), record)
    return buffer.getvalue()


def decode_record(data: bytes, *, schemas: SchemaSet = DEFAULT_SCHEMAS) -> AvroRecord:
    """The raw record in `data`, resolved into the current schema of `schemas`.

    A union with several records is returned in tuple notation `(full_name, dict)`; a nullable
    record as the bare dict or None.
    """
    version, writer = _read_header(data, schemas)
    # Same version: skip schema resolution entirely.
    reader = None if version == schemas.current_version else schemas.reader_schema()
    body = io.BytesIO(data)
    body.seek(HEADER_SIZE)
    try:
        record: Any = fastavro.schemaless_reader(
            body,
            writer,
            reader,
            return_record_name=True,
            return_record_name_override=True,
        )
    except Exception as exc:
        raise EnvelopeDecodeError(
            f"corrupt or truncated envelope body (schema v{version}): {exc!r}"
        ) from exc
    trailing = len(data) - body.tell()
    if trailing:
        raise EnvelopeDecodeError(
            f"corrupt envelope: {trailing} trailing bytes after the record (schema v{version})"
        )
    return record


def _read_header(data: bytes, schemas: SchemaSet) -> tuple[int, ParsedSchema]:
    """The version in the header of `data` and its writer schema."""
    if not isinstance(data, bytes | bytearray):
        hint = " (a Kafka tombstone has no value)" if data is None else ""
        raise EnvelopeDecodeError(f"expected bytes, got {type(data).__name__}{hint}")
    if len(data) < HEADER_SIZE:
        raise EnvelopeDecodeError(
            f"envelope too short: {len(data)} bytes, the header alone has {HEADER_SIZE}"
        )
    magic, version = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise EnvelopeDecodeError(
            f"not an infinitic-streams envelope: starts with {bytes(data[:2])!r}, "
            f"expected {MAGIC!r}"
        )
    writer = schemas.by_version.get(version)
    if writer is not None:
        return version, writer
    if version > schemas.current_version:
        raise EnvelopeDecodeError(
            f"written by a newer infinitic-streams (schema v{version}); upgrade this process "
            f"(it reads schemas up to v{schemas.current_version})"
        )
    known = ", ".join(f"v{n}" for n in schemas.by_version)
    raise EnvelopeDecodeError(
        f"unknown envelope schema version v{version}; this process reads {known}"
    )
