"""Mapping between the message dataclasses and the dicts fastavro reads and writes.

The mapping is derived once from the dataclasses' type hints: for each class, only the fields that
need converting (nested records, tuples, unions of records, enums) get a converter; every other
field is passed through as is. Unions holding records use fastavro's `(record_name, dict)` tuple
notation when writing, so fastavro picks the branch without trying each one.
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, get_args, get_origin, get_type_hints

from infinitic_streams.protocol.messages import Envelope

NAMESPACE = "infinitic"

Converter = Callable[[Any], Any]
AvroRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordCodec:
    """Converts one dataclass to and from its Avro record dict."""

    cls: type
    avro_name: str
    get_values: Callable[[Any], tuple[Any, ...]]
    names: tuple[str, ...]
    encoders: tuple[tuple[str, Converter], ...]
    decoders: tuple[tuple[str, Converter], ...]

    def to_record(self, obj: Any) -> AvroRecord:
        record = dict(zip(self.names, self.get_values(obj), strict=True))
        for name, encode in self.encoders:
            record[name] = encode(record[name])
        return record

    def from_record(self, record: AvroRecord) -> Any:
        """Build the dataclass; `record` (fresh from fastavro) is converted in place."""
        for name, decode in self.decoders:
            record[name] = decode(record[name])
        return self.cls(**record)


_codecs: dict[type, RecordCodec] = {}


def codec(cls: type) -> RecordCodec:
    """The codec of dataclass `cls`, built on first use."""
    found = _codecs.get(cls)
    if found is None:
        found = _codecs[cls] = _build_codec(cls)
    return found


def _build_codec(cls: type) -> RecordCodec:
    hints = get_type_hints(cls)
    names = tuple(f.name for f in fields(cls))
    encoders, decoders = [], []
    for name in names:
        encode, decode = _converters(hints[name])
        if encode is not None:
            encoders.append((name, encode))
        if decode is not None:
            decoders.append((name, decode))
    return RecordCodec(
        cls=cls,
        avro_name=f"{NAMESPACE}.{cls.__name__}",
        get_values=_values_getter(names),
        names=names,
        encoders=tuple(encoders),
        decoders=tuple(decoders),
    )


def _values_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    getter = operator.attrgetter(*names)
    if len(names) == 1:  # attrgetter of one name returns the value, not a 1-tuple
        return lambda obj: (getter(obj),)
    return getter


def _converters(hint: Any) -> tuple[Converter | None, Converter | None]:
    """(encoder, decoder) for a field of type `hint`; None where the value passes as is."""
    if is_dataclass(hint):
        record_codec = codec(hint)  # type: ignore[arg-type]
        return record_codec.to_record, record_codec.from_record
    if isinstance(hint, type) and issubclass(hint, Enum):
        return None, hint  # a StrEnum member is already the str symbol fastavro writes
    origin = get_origin(hint)
    if origin is tuple:
        return _tuple_converters(get_args(hint)[0])
    if origin is types.UnionType:
        return _union_converters(get_args(hint))
    return None, None


def _tuple_converters(item: Any) -> tuple[Converter | None, Converter]:
    encode, decode = _converters(item)
    # fastavro writes any sequence as an array; it reads arrays back as lists.
    encode_all = None if encode is None else lambda values: [encode(v) for v in values]
    decode_all = tuple if decode is None else lambda values: tuple(decode(v) for v in values)
    return encode_all, decode_all


def _union_converters(branches: tuple[Any, ...]) -> tuple[Converter | None, Converter | None]:
    records = [codec(branch) for branch in branches if is_dataclass(branch)]
    if not records:
        return None, None  # a nullable primitive
    if len(branches) == 2 and type(None) in branches:
        return _optional_record_converters(records[0])
    if len(records) == len(branches):
        return _record_union_converters(records)
    raise TypeError(f"unsupported union of message fields: {branches}")


def _optional_record_converters(record_codec: RecordCodec) -> tuple[Converter, Converter]:
    name, to_record, from_record = (
        record_codec.avro_name,
        record_codec.to_record,
        record_codec.from_record,
    )

    def encode(value: Any) -> Any:
        return None if value is None else (name, to_record(value))

    def decode(value: Any) -> Any:
        # Read with return_record_name_override: a union with one record yields the bare dict.
        return None if value is None else from_record(value)

    return encode, decode


def _record_union_converters(records: list[RecordCodec]) -> tuple[Converter, Converter]:
    by_class = {record_codec.cls: record_codec for record_codec in records}
    by_name = {record_codec.avro_name: record_codec for record_codec in records}

    def encode(value: Any) -> tuple[str, AvroRecord]:
        record_codec = by_class.get(type(value))
        if record_codec is None:
            raise TypeError(f"{type(value).__name__} is not a message type")
        return record_codec.avro_name, record_codec.to_record(value)

    def decode(value: tuple[str, AvroRecord]) -> Any:
        name, record = value
        return by_name[name].from_record(record)

    return encode, decode


ENVELOPE = codec(Envelope)
