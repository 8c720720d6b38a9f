"""Errors of the protocol layer: unreadable envelopes and unusable schema folders."""

from __future__ import annotations

from infinitic_streams.errors import InfiniticError


class EnvelopeDecodeError(InfiniticError):
    """Bytes read from Kafka are not an envelope this process can decode.

    The message says why (too short, foreign data, newer schema, corrupt body, ...). The Kafka
    layer typically moves such records to a dead-letter topic instead of crashing.
    """


class SchemaError(InfiniticError):
    """The Avro schema files shipped with this package are missing or unusable."""
