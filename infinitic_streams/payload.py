"""Payload codec for user values: task/workflow arguments, results and signals.

Values become compact UTF-8 JSON whose layout is chosen by the Python type hint. Decoding never
unpickles and never imports a class named in the data: the hint alone says what to build, so a
message on a topic cannot run code. Each hint is compiled once into an encode/decode pair.

=============================  ==========================================================
Python value (under its hint)  JSON
=============================  ==========================================================
str, int, bool, None           as is (an int hint keeps a bool, a float hint keeps an int)
float                          number; nan, inf, -inf as "NaN", "Infinity", "-Infinity"
bytes                          base64 string
list, tuple, set, frozenset    array (set elements sorted by their JSON text)
dict[str, V]                   object
dict[K, V]                     array of [k, v] pairs
dict[Any, V], bare dict        object, or {"$dict": [[k, v], ...]} (see Any)
dataclass (that exact class)    object by field name (unknown keys ignored, missing -> default)
Enum, IntEnum, StrEnum         the member's value
datetime, date, time           isoformat (an aware datetime keeps its UTC offset, not its
                               zone name: ZoneInfo("Europe/Paris") comes back as a fixed
                               timezone(timedelta(hours=1)) with the same instant)
timedelta                      integer microseconds
UUID, Decimal                  string (Decimal exact)
A | B, shapes can be confused  {"$type": "<member name>", "value": ...}; else untagged
Any, JSON-native value         as is
Any, other builtin value       {"$bytes": b64}, {"$tuple": [...]}, {"$set": [...]},
                               {"$frozenset": [...]}, {"$datetime": iso}, {"$date": iso},
                               {"$time": iso}, {"$timedelta": us}, {"$uuid": s},
                               {"$decimal": s}, {"$float": "NaN"}, {"$dict": [[k, v], ...]}
                               (non-str keys, or a single key starting with "$")
Any, dataclass or Enum         SerializationError: it needs a type hint (no lookup by name)
=============================  ==========================================================
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import functools
import inspect
import itertools
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any, NoReturn
from uuid import UUID

from infinitic_streams.errors import PayloadTooLarge, SerializationError

# The most one encoded payload (arguments of a call, a result) may take: Kafka messages have
# a size limit (see topics.py for the message and topic limits derived from it).
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

__all__ = ["decode", "decode_args", "encode", "encode_args", "hints_of"]

Convert = Callable[[Any], Any]
_JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", NoneType: "null"}
_JSON_NAMES |= {list: "array", dict: "object"}
_NON_FINITE = {"NaN", "Infinity", "-Infinity"}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


_loads = json.JSONDecoder(parse_constant=_reject_constant).decode


class _Failure(Exception):
    """A conversion failed; containers prepend their path segment while it propagates up."""

    def __init__(self, type_name: str, reason: str) -> None:
        super().__init__(reason)
        self.type_name, self.reason, self.segments = type_name, reason, list[str]()

    def at(self, segment: str) -> _Failure:
        self.segments.append(segment)
        return self

    def error(self, root: str) -> SerializationError:
        path = root + "".join(reversed(self.segments))
        return SerializationError(path, self.type_name, self.reason)


def _wrong_value(expected: str, v: object) -> _Failure:
    return _Failure(type(v).__name__, f"expected {expected}, got {type(v).__name__}")


def _wrong_json(expected: str, x: object, detail: str = "") -> _Failure:
    got = _JSON_NAMES.get(type(x), type(x).__name__)
    return _Failure(expected, f"expected {expected}{detail}, got JSON {got}")


@dataclasses.dataclass(slots=True)
class _Codec:
    name: str
    encode: Convert  # Python value -> JSON-able tree
    decode: Convert  # JSON-able tree -> Python value
    types: tuple[type, ...]  # Python types the encoder takes, to pick a union member
    shapes: frozenset[type]  # JSON types (after json.loads) the encoder produces


# Containers convert with fast comprehensions; only when one fails do they re-run item by item
# to find which item it was, so the happy path never builds a path string.
def _map(fn: Convert, items: Iterable[Any]) -> list[Any]:
    try:
        return [fn(x) for x in items]
    except _Failure:
        for i, x in enumerate(items):
            try:
                fn(x)
            except _Failure as failure:
                raise failure.at(f"[{i}]") from None
        raise


def _map_pairs(kfn: Convert, vfn: Convert, pairs: Iterable[Any]) -> list[tuple[Any, Any]]:
    try:
        return [(kfn(k), vfn(v)) for k, v in pairs]
    except _Failure:
        for k, v in pairs:
            try:
                kfn(k)
                vfn(v)
            except _Failure as failure:
                raise failure.at(f"[{k!r}]") from None
        raise


def _same(x: object) -> object:
    return x


def _call(pair: tuple[Convert, object]) -> object:
    return pair[0](pair[1])


# --- scalars -------------------------------------------------------------------------------


def _native(name: str, accepts: tuple[type, ...], json_types: tuple[type, ...]) -> _Codec:
    """str, int, bool, None: their own JSON. Subclasses are accepted (an int hint takes a bool)."""

    def encode(v: object) -> object:
        if isinstance(v, accepts):
            return v
        raise _wrong_value(name, v)

    def decode(x: object) -> object:
        if type(x) in json_types:
            return x
        raise _wrong_json(name, x)

    return _Codec(name, encode, decode, accepts[:1], frozenset(json_types[:1]))


def _float_encode(v: object) -> object:
    if isinstance(v, float):
        return v if math.isfinite(v) else "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, int):  # an int (or bool) under a float hint stays an int
        return v
    raise _wrong_value("float", v)


def _float_decode(x: object) -> object:
    if type(x) in (float, int, bool):
        return x
    if type(x) is str and x in _NON_FINITE:
        return float(x)
    raise _wrong_json("float", x)


def _leaf(cls: type, json_type: type, to_json: Convert, from_json: Convert) -> _Codec:
    """A value of exactly type `cls` (a datetime is no date here) as one JSON string or int."""
    name = cls.__name__

    def encode(v: object) -> object:
        if type(v) is cls:
            return to_json(v)
        raise _wrong_value(name, v)

    def decode(x: object) -> object:
        if type(x) is not json_type:
            raise _wrong_json(name, x)
        try:
            return from_json(x)
        except (ValueError, ArithmeticError) as e:  # binascii.Error is a ValueError
            raise _Failure(name, f"invalid {name} {x!r:.60}: {e}") from None

    return _Codec(name, encode, decode, (cls,), frozenset({json_type}))


def _micros(v: timedelta) -> int:
    return (v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds


_NONE = _native("None", (NoneType,), (NoneType,))
_SUB_SECOND_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})$")


def _from_iso(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`fromisoformat`, keeping the microseconds of a UTC offset (Python 3.11 drops them)."""

    def decode(text: str) -> Any:
        value = parse(text)
        match = _SUB_SECOND_OFFSET.search(text)
        if match is None:
            return value
        sign, hours, minutes, seconds, micros = match.groups()
        offset = timedelta(
            hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=int(micros)
        )
        return value.replace(tzinfo=timezone(-offset if sign == "-" else offset))

    return decode


_FLOAT = _Codec("float", _float_encode, _float_decode, (float,), frozenset({float, str}))
_SCALARS: dict[type, _Codec] = {
    str: _native("str", (str,), (str,)),
    int: _native("int", (int,), (int, bool)),
    bool: _native("bool", (bool,), (bool,)),
    float: _FLOAT,
    bytes: _leaf(
        bytes,
        str,
        lambda b: base64.b64encode(b).decode(),
        lambda s: base64.b64decode(s, validate=True),
    ),
    datetime: _leaf(datetime, str, datetime.isoformat, _from_iso(datetime.fromisoformat)),
    date: _leaf(date, str, date.isoformat, date.fromisoformat),
    time: _leaf(time, str, time.isoformat, _from_iso(time.fromisoformat)),
    timedelta: _leaf(timedelta, int, _micros, lambda us: timedelta(microseconds=us)),
    UUID: _leaf(UUID, str, str, UUID),
    Decimal: _leaf(Decimal, str, str, Decimal),
}


# --- Any: JSON-native values as is, other builtins as single-key tagged objects -------------


def _needs_hint(v: object) -> str:
    name = type(v).__name__
    if dataclasses.is_dataclass(v) or isinstance(v, enum.Enum):
        kind = "Enum" if isinstance(v, enum.Enum) else "dataclass"
        return (
            f"{kind} {name} needs a type hint to be encoded; annotate the parameter or return type"
        )
    return f"{name} values cannot be encoded: use JSON values, builtins or hinted dataclasses/Enums"


def _any_encode(v: object) -> object:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if t is float and math.isfinite(v):
        return v
    if t is list:
        return _map(_any_encode, v)
    if t is dict:
        return _ANY_DICT.encode(v)
    tagged = _ANY_TAGS.get(t)
    if tagged is None:
        raise _Failure(t.__name__, _needs_hint(v))
    return {tagged[0]: tagged[1].encode(v)}


def _any_decode(x: object) -> object:
    if type(x) is list:
        return _map(_any_decode, x)
    if type(x) is not dict:
        return x
    if len(x) == 1:
        ((tag, inner),) = x.items()
        if tag[:1] == "$" and tag != "$dict":
            if tag not in _ANY_TAG_CODECS:
                raise _Failure("Any", f"unknown tag {tag!r:.60}")
            return _ANY_TAG_CODECS[tag].decode(inner)
    return _ANY_DICT.decode(x)


_ANY = _Codec("Any", _any_encode, _any_decode, (object,), frozenset(_JSON_NAMES))


# --- containers ----------------------------------------------------------------------------


def _collection(item: _Codec, origin: type, name: str) -> _Codec:
    """list[T], tuple[T, ...], set[T], frozenset[T]: an array (a set's sorted by JSON text)."""
    item_encode, item_decode = item.encode, item.decode
    unordered = origin is set or origin is frozenset

    def encode(v: object) -> object:
        if not isinstance(v, origin):
            raise _wrong_value(name, v)
        items = _map(item_encode, v)
        return sorted(items, key=_dumps) if unordered else items

    def decode(x: object) -> object:
        if type(x) is not list:
            raise _wrong_json(name, x)
        items = _map(item_decode, x)
        try:
            return items if origin is list else origin(items)
        except TypeError as e:
            raise _Failure(name, f"unhashable element: {e}") from None

    return _Codec(name, encode, decode, (origin,), frozenset({list}))


def _fixed_tuple(items: list[_Codec], name: str) -> _Codec:
    encoders, decoders, size = [c.encode for c in items], [c.decode for c in items], len(items)

    def encode(v: object) -> object:
        if not isinstance(v, tuple):
            raise _wrong_value(name, v)
        if len(v) != size:
            raise _Failure(type(v).__name__, f"expected {name} with {size} items, got {len(v)}")
        return _map(_call, list(zip(encoders, v, strict=True)))

    def decode(x: object) -> object:
        if type(x) is not list or len(x) != size:
            raise _wrong_json(name, x, f" as an array of {size} items")
        return tuple(_map(_call, list(zip(decoders, x, strict=True))))

    return _Codec(name, encode, decode, (tuple,), frozenset({list}))


def _plain_keys(d: dict[Any, Any]) -> bool:
    """True when `d` can be a JSON object under Any: str keys, and not one "$" key (a tag)."""
    return all(type(k) is str for k in d) and not (len(d) == 1 and next(iter(d))[:1] == "$")


def _dict(key: _Codec, value: _Codec, name: str) -> _Codec:
    """dict[str, V]: an object; dict[K, V]: [k, v] pairs; dict[Any, V]: an object if the keys
    allow it (see _plain_keys), else {"$dict": pairs}."""
    kenc, venc, kdec, vdec = key.encode, value.encode, key.decode, value.decode
    by_str, by_any = key is _SCALARS[str], key is _ANY

    def encode(v: object) -> object:
        if not isinstance(v, dict):
            raise _wrong_value(name, v)
        if by_str or (by_any and _plain_keys(v)):
            return dict(_map_pairs(kenc, venc, v.items()))
        pairs = _map_pairs(kenc, venc, v.items())
        return {"$dict": pairs} if by_any else pairs

    def decode(x: object) -> object:
        if by_any and type(x) is dict and len(x) == 1 and "$dict" in x:
            x = x["$dict"]
        elif by_str or by_any:
            if type(x) is not dict:
                raise _wrong_json(name, x)
            return dict(_map_pairs(_same, vdec, x.items()))
        if type(x) is not list or not all(type(p) is list and len(p) == 2 for p in x):
            raise _wrong_json(name, x, " as an array of [key, value] pairs")
        try:
            return dict(_map_pairs(kdec, vdec, x))
        except TypeError as e:
            raise _Failure(name, f"unhashable key: {e}") from None

    return _Codec(name, encode, decode, (dict,), frozenset({dict if by_str or by_any else list}))


_ANY_DICT = _dict(_ANY, _ANY, "dict")
_ANY_TAGS: dict[type, tuple[str, _Codec]] = {
    float: ("$float", _FLOAT),
    tuple: ("$tuple", _collection(_ANY, tuple, "tuple")),
    set: ("$set", _collection(_ANY, set, "set")),
    frozenset: ("$frozenset", _collection(_ANY, frozenset, "frozenset")),
    **{t: (f"${t.__name__.lower()}", _SCALARS[t]) for t in (bytes, datetime, date, time)},
    **{t: (f"${t.__name__.lower()}", _SCALARS[t]) for t in (timedelta, UUID, Decimal)},
}
_ANY_TAG_CODECS = dict(_ANY_TAGS.values())


# --- enums and unions ----------------------------------------------------------------------


def _enum(cls: type[enum.Enum], name: str) -> _Codec:
    try:
        shapes = frozenset(type(_any_encode(member.value)) for member in cls)
    except _Failure as failure:
        raise _Failure(name, f"Enum {name} has a value that cannot be encoded") from failure

    def encode(v: object) -> object:
        if type(v) is not cls:
            raise _wrong_value(name, v)
        return _any_encode(v.value)

    def decode(x: object) -> object:
        value = _any_decode(x)
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise _Failure(name, f"{value!r:.60} is not a value of {name}") from None

    return _Codec(name, encode, decode, (cls,), shapes)


def _union(members: list[_Codec], name: str) -> _Codec:
    """Untagged when no two members can produce the same JSON type, else {"$type", "value"}."""
    tagged = any(a.shapes & b.shapes for a, b in itertools.combinations(members, 2))
    by_name = {m.name: m for m in members}
    if tagged and len(by_name) < len(members):
        raise _Failure(name, f"members of {name} share a name, so they cannot be told apart")
    by_shape: dict[type, Convert] = {}
    for m in members:
        for shape in m.shapes:
            by_shape.setdefault(shape, m.decode)
    by_type: dict[type, list[tuple[int, _Codec]]] = {}

    def ranked(t: type) -> list[tuple[int, _Codec]]:
        """Members to try: exact type first, then subclass, then the rest (float takes int)."""
        ranks = [0 if t in m.types else 1 if issubclass(t, m.types) else 2 for m in members]
        return sorted(zip(ranks, members, strict=True), key=lambda pair: pair[0])

    def encode(v: object) -> object:
        first: _Failure | None = None
        order = by_type.get(type(v)) or by_type.setdefault(type(v), ranked(type(v)))
        for rank, member in order:
            try:
                out = member.encode(v)
            except _Failure as failure:
                first = first or (failure if rank < 2 else None)
                continue
            return {"$type": member.name, "value": out} if tagged else out
        raise first or _wrong_value(name, v)

    def decode_tagged(x: object) -> object:
        tag = x.get("$type") if type(x) is dict and len(x) == 2 and "value" in x else None
        if type(tag) is str and tag in by_name:
            return by_name[tag].decode(x["value"])
        raise _wrong_json(name, x, ' as {"$type": <member>, "value": ...}')

    def decode_untagged(x: object) -> object:
        if type(x) in by_shape:
            return by_shape[type(x)](x)
        for m in members:  # e.g. a JSON integer under float | None
            with contextlib.suppress(_Failure):
                return m.decode(x)
        raise _wrong_json(name, x)

    shapes = frozenset({dict}) if tagged else frozenset().union(*(m.shapes for m in members))
    types = tuple(t for m in members for t in m.types)
    return _Codec(name, encode, decode_tagged if tagged else decode_untagged, types, shapes)


def _optional(core: _Codec, name: str) -> _Codec:
    core_encode, core_decode = core.encode, core.decode

    def encode(v: object) -> object:
        return None if v is None else core_encode(v)

    def decode(x: object) -> object:
        return None if x is None else core_decode(x)

    return _Codec(name, encode, decode, (*core.types, NoneType), core.shapes | {NoneType})


# --- compiling hints -----------------------------------------------------------------------


def _hint_name(hint: object) -> str:
    if hint is NoneType or hint is None:
        return "None"
    if hint is Ellipsis:
        return "..."
    if isinstance(hint, list):  # the parameters of a Callable
        return f"[{', '.join(_hint_name(a) for a in hint)}]"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is UnionType:
        return " | ".join(_hint_name(a) for a in args)
    if origin is not None and args:
        return f"{_hint_name(origin)}[{', '.join(_hint_name(a) for a in args)}]"
    if isinstance(hint, type):
        return hint.__name__
    return repr(hint).removeprefix("typing.")


class _Compiler:
    """Builds the codecs of one hint; they join the cache only if the whole hint compiles."""

    def __init__(self) -> None:
        self.built: dict[object, _Codec] = {}
        self.building: dict[object, _Codec] = {}  # dataclasses being compiled (recursive hints)

    def compile(self, hint: object) -> _Codec:
        try:
            known = _cache.get(hint) or self.built.get(hint)
        except TypeError:  # an unhashable hint, e.g. Annotated with a dict: not cached
            return self._build(hint)
        if known is None and hint in self.building:  # recursion: bind late, to the finished codec
            target = self.building[hint]
            late_encode, late_decode = (lambda v: target.encode(v)), (lambda x: target.decode(x))
            known = dataclasses.replace(target, encode=late_encode, decode=late_decode)
        return known or self.built.setdefault(hint, self._build(hint))

    def _build(self, hint: object) -> _Codec:
        name, origin, args = _hint_name(hint), typing.get_origin(hint), typing.get_args(hint)
        if hint is Any or hint is object:
            return _ANY
        if hint is None or hint is NoneType:
            return _NONE
        if isinstance(hint, type) and hint in _SCALARS:
            return _SCALARS[hint]
        if origin is typing.Annotated or isinstance(hint, typing.NewType):
            return self.compile(args[0] if args else hint.__supertype__)
        if origin is typing.Union or origin is UnionType:
            if Any in args or object in args:
                return _ANY
            members = [self.compile(a) for a in args if a is not NoneType]
            core = members[0] if len(members) == 1 else _union(members, name)
            return _optional(core, name) if NoneType in args else core
        kind = origin or hint
        if kind in (list, set, frozenset) or (kind is tuple and (not args or args[-1] is ...)):
            return _collection(self.compile(args[0] if args else Any), kind, name)
        if kind is tuple:  # tuple[()] reads as bare tuple above: both hold an empty tuple
            return _fixed_tuple([self.compile(a) for a in args], name)
        if kind is dict:
            key, value = args or (Any, Any)
            return _dict(self.compile(key), self.compile(value), name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self._dataclass(hint, name)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return _enum(hint, name)
        raise _Failure(
            name,
            f"unsupported type hint {name}: use JSON types, bytes, tuple, set, frozenset, "
            "datetime, date, time, timedelta, UUID, Decimal, dataclasses, Enums or unions",
        )

    def _dataclass(self, cls: type, name: str) -> _Codec:
        # Filled in below; nothing calls it before: a failed compile caches nothing.
        codec = self.building[cls] = _Codec(name, _same, _same, (cls,), frozenset({dict}))
        try:
            hints = typing.get_type_hints(cls, localns={cls.__name__: cls})
        except Exception as e:
            raise _Failure(name, f"cannot resolve the type hints of {name}: {e}") from None
        fields: list[tuple[dataclasses.Field[Any], _Codec]] = []
        for field in dataclasses.fields(cls):
            try:
                fields.append((field, self.compile(hints.get(field.name, Any))))
            except _Failure as failure:
                raise failure.at(f".{field.name}") from None
        codec.encode, codec.decode = _dataclass_functions(cls, name, fields)
        del self.building[cls]
        return codec


def _dataclass_functions(
    cls: type, name: str, fields: list[tuple[dataclasses.Field[Any], _Codec]]
) -> tuple[Convert, Convert]:
    encoders = [(f.name, c.encode) for f, c in fields]
    missing = dataclasses.MISSING
    decoders = [
        (f.name, c.decode, c.name, f.init, f.default is missing and f.default_factory is missing)
        for f, c in fields
    ]

    def encode(v: object) -> object:
        if type(v) is not cls:
            raise _wrong_value(name, v)
        out, field = {}, ""
        try:
            for field, field_encode in encoders:
                out[field] = field_encode(getattr(v, field))
        except _Failure as failure:
            raise failure.at(f".{field}") from None
        return out

    def decode(x: object) -> object:
        if type(x) is not dict:
            raise _wrong_json(name, x)
        kwargs, late, field = {}, {}, ""
        try:
            for field, field_decode, type_name, init, required in decoders:
                if field in x:
                    (kwargs if init else late)[field] = field_decode(x[field])
                elif required and init:  # a missing field with a default takes it: data evolves
                    raise _Failure(type_name, f"missing required field {field!r} of {name}")
        except _Failure as failure:
            raise failure.at(f".{field}") from None
        try:
            obj = cls(**kwargs)
        except Exception as e:
            raise _Failure(name, f"{name}(...) raised {type(e).__name__}: {e}") from None
        for field, value in late.items():  # init=False fields; works for frozen dataclasses too
            object.__setattr__(obj, field, value)
        return obj

    return encode, decode


# Compiling one hint in two threads at once is harmless (equal codecs), so there is no lock.
_cache: dict[object, _Codec] = {}


def _codec_for(hint: object) -> _Codec:
    try:
        codec = _cache.get(hint)
    except TypeError:
        codec = None
    if codec is None:
        compiler = _Compiler()
        codec = compiler.compile(hint)
        _cache.update(compiler.built)
    return codec


# --- public API ----------------------------------------------------------------------------


def _encode(value: object, hint: object) -> bytes:
    try:
        return _dumps(_codec_for(hint).encode(value)).encode("ascii")
    except (ValueError, RecursionError) as e:  # an int too long to print, a circular value
        raise _Failure(type(value).__name__, f"cannot encode: {e}") from None


def _decode(data: bytes, hint: object) -> object:
    codec = _codec_for(hint)
    try:
        return codec.decode(_loads(data.decode("utf-8")))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, too deep
        raise _Failure(codec.name, f"invalid JSON: {e}") from None


def encode(value: object, hint: object = Any, path: str = "value") -> bytes:
    """Encode `value` as UTF-8 JSON laid out by `hint`; errors name it `path`."""
    try:
        return _encode(value, hint)
    except _Failure as failure:
        raise failure.error(path) from None


def decode(data: bytes, hint: object = Any, path: str = "value") -> object:
    """Decode bytes made by `encode` with the same `hint`; errors name the value `path`."""
    try:
        return _decode(data, hint)
    except _Failure as failure:
        raise failure.error(path) from None


def check_size(data: Sequence[bytes], limit: int, what: str) -> None:
    """Raise `PayloadTooLarge` when the encoded values `data` take more than `limit` bytes."""
    size = sum(len(d) for d in data)
    if size > limit:
        raise PayloadTooLarge(what, size, limit)


def _with_hints(values: Sequence[Any], hints: Sequence[object]) -> list[tuple[Any, object]]:
    if len(values) != len(hints):
        reason = f"expected {len(hints)} arguments, got {len(values)}"
        raise SerializationError("args", type(values).__name__, reason)
    return list(zip(values, hints, strict=True))


def encode_args(args: Sequence[object], hints: Sequence[object]) -> list[bytes]:
    """Encode positional arguments, one payload each; errors name them `args[0]`, `args[1]`..."""
    pairs = _with_hints(args, hints)
    try:
        return _map(lambda pair: _encode(*pair), pairs)
    except _Failure as failure:
        raise failure.error("args") from None


def decode_args(datas: Sequence[bytes], hints: Sequence[object]) -> list[object]:
    """Decode payloads made by `encode_args` with the same hints."""
    pairs = _with_hints(datas, hints)
    try:
        return _map(lambda pair: _decode(*pair), pairs)
    except _Failure as failure:
        raise failure.error("args") from None


@functools.lru_cache(maxsize=4096)  # called for every task and step: hints do not change
def hints_of(fn: Callable[..., object]) -> tuple[tuple[object, ...], object]:
    """Parameter hints (without `self`) and return hint of `fn`; a missing annotation is Any."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        name = getattr(fn, "__qualname__", repr(fn))
        raise SerializationError(name, "function", f"cannot resolve type hints: {e}") from None
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return tuple(hints.get(p.name, Any) for p in params), hints.get("return", Any)
