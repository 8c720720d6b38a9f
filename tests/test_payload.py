"""Tests of the payload codec: exact round trips per type hint, the wire format, and errors."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Optional
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infinitic_streams import payload
from infinitic_streams.errors import SerializationError
from infinitic_streams.payload import decode, decode_args, encode, encode_args, hints_of


class Color(Enum):
    RED = "red"
    GREEN = "green"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


class Mode(StrEnum):
    FAST = "fast"
    SAFE = "safe"


class Shape(Enum):
    SQUARE = (1, 1)
    LINE = (1, 0)


@dataclass(frozen=True)
class Point:
    x: int
    y: float


@dataclass
class Item:
    sku: str
    qty: int
    tags: frozenset[str] = frozenset()


@dataclass
class Order:
    id: UUID
    items: list[Item]
    total: Decimal
    color: Color
    created: datetime
    where: Point | None = None
    notes: dict[int, str] = field(default_factory=dict)
    checksum: int = field(init=False, default=0)


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


@dataclass
class Tree:
    value: int
    left: Tree | None = None
    right: Tree | None = None


@dataclass
class Cat:
    name: str


@dataclass
class Dog:
    name: str


@dataclass
class Basket:
    owner: str
    items: list[int]


@dataclass
class OrderV1:
    id: int


@dataclass
class OrderV2:
    id: int
    coupon: str | None = None
    lines: list[str] = field(default_factory=list)


class Plain:
    pass


class Sneaky:
    def __reduce__(self) -> tuple[object, ...]:
        return (print, ("pwned",))


@dataclass
class HasPlain:
    ok: int
    bad: Plain


# --- strategies ----------------------------------------------------------------------------

OFFSETS = st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
TIMEZONES = st.none() | st.just(UTC) | st.builds(timezone, OFFSETS)


def values(hint: object, nan: bool = True) -> st.SearchStrategy[Any]:
    """Values of `hint`; `nan=False` inside sets and keys, where nan != nan breaks equality."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    scalars: dict[object, st.SearchStrategy[Any]] = {
        str: st.text(max_size=8),
        int: st.integers(),
        float: st.floats(allow_nan=nan),
        bool: st.booleans(),
        NoneType: st.none(),
        bytes: st.binary(max_size=8),
        datetime: st.datetimes(timezones=TIMEZONES),
        date: st.dates(),
        time: st.times(timezones=TIMEZONES),
        timedelta: st.timedeltas(),
        UUID: st.uuids(),
        Decimal: st.decimals(allow_nan=False),
    }
    if hint in scalars:
        return scalars[hint]
    if hint is Any:
        return any_values if nan else hashables | DOLLAR_KEYS
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(hint)
    if origin is typing.Union or origin is UnionType:
        return st.one_of([values(a, nan) for a in args])
    if origin is list:
        return st.lists(values(args[0], nan), max_size=4)
    if origin is tuple:
        if args[-1] is ...:
            return st.lists(values(args[0], nan), max_size=4).map(tuple)
        return st.tuples(*(values(a, nan) for a in args))
    if origin in (set, frozenset):
        return (st.sets if origin is set else st.frozensets)(values(args[0], False), max_size=4)
    if origin is dict:
        return st.dictionaries(values(args[0], False), values(args[1], nan), max_size=4)
    if hint is Node:
        return nodes
    if hint is Tree:
        return trees
    if dataclasses.is_dataclass(hint):
        return dataclass_values(hint)
    raise AssertionError(f"no strategy for {hint}")


def dataclass_values(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    init = {f.name: values(hints[f.name]) for f in fields if f.init}
    late = {f.name: values(hints[f.name]) for f in fields if not f.init}

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        obj = cls(**{name: draw(strategy) for name, strategy in init.items()})
        for name, strategy in late.items():  # init=False fields
            object.__setattr__(obj, name, draw(strategy))
        return obj

    return build()


nodes: st.SearchStrategy[Node] = st.deferred(
    lambda: st.builds(Node, st.text(max_size=3), st.lists(nodes, max_size=3))
)
trees: st.SearchStrategy[Tree] = st.deferred(
    lambda: st.builds(Tree, st.integers(), st.none() | trees, st.none() | trees)
)

hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
DOLLAR_KEYS = st.sampled_from(["$x", "$tuple", "$dict", "$type", "a"]) | st.text(max_size=4)
any_scalars = st.one_of(
    [values(t) for t in (str, int, float, bool, NoneType, bytes, datetime, date, time)]
    + [values(t) for t in (timedelta, UUID, Decimal)]
)
any_values = st.recursive(
    any_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(DOLLAR_KEYS, inner, max_size=3)
        | st.dictionaries(st.integers() | st.text(max_size=2), inner, max_size=3)
        | st.sets(hashables, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=8,
)


def same(a: object, b: object) -> bool:
    """Equal, of the same types all the way down, with nan equal to nan and -0.0 kept."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, datetime | time) and a.tzinfo is not None:
        return a == b and a.utcoffset() == b.utcoffset()
    return a == b


def round_trip(value: object, hint: object = Any) -> object:
    return decode(encode(value, hint), hint)


# --- round trips ---------------------------------------------------------------------------

HINTS: list[object] = [
    str, int, float, bool, NoneType, bytes, datetime, date, time, timedelta, UUID, Decimal,
    Color, Level, Mode, Shape,
    list[int], tuple[int, ...], tuple[str, float, bool], dict[str, float], dict[int, str],
    dict[Level, list[bytes]], dict[Any, int], set[int], frozenset[str], set[tuple[int, str]],
    typing.List[float], typing.Dict[str, int], typing.Tuple[int, ...], typing.Set[UUID],  # noqa: UP006
    Point, Item, Order, Node, Tree,
    int | str, int | float, str | None, Optional[Point], Cat | Dog, bytes | str,  # noqa: UP045
    date | str, datetime | date, list[int] | dict[str, int], Level | int, float | None,
    float | str, list[Cat | Dog | None], timedelta | int, Any,
]  # fmt: skip


@pytest.mark.parametrize("hint", HINTS, ids=str)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_is_exact(hint: object, data: st.DataObject) -> None:
    value = data.draw(values(hint))
    encoded = encode(value, hint)
    assert isinstance(encoded, bytes)
    assert same(decode(encoded, hint), value), encoded
    assert encode(value, hint) == encoded  # deterministic


@settings(max_examples=150, deadline=None)
@given(any_values)
def test_any_round_trips_builtins(value: object) -> None:
    assert same(round_trip(value), value)


@pytest.mark.parametrize("hint", [list, dict, tuple, set, frozenset, typing.List, typing.Dict])  # noqa: UP006
def test_bare_containers_hold_any(hint: type) -> None:
    origin = typing.get_origin(hint) or hint
    value = origin({1: (2.5, b"x")}) if origin is dict else origin([1, ("a", b"x")])
    assert same(round_trip(value, hint), value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, 5e-324])
def test_special_floats(value: float) -> None:
    assert same(round_trip(value, float), value)
    assert same(round_trip(value), value)
    assert same(round_trip([value], list[float]), [value])


def test_float_hint_keeps_int_and_int_hint_keeps_bool() -> None:
    assert same(round_trip(3, float), 3)
    assert same(round_trip(True, int), True)
    assert same(round_trip([1, 2.5, True], list[float]), [1, 2.5, True])


def test_aware_datetime_keeps_its_utc_offset() -> None:
    moment = datetime(2024, 3, 31, 2, 30, 15, 123, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert encode(moment, datetime) == b'"2024-03-31T02:30:15.000123+05:30"'
    back = round_trip(moment, datetime)
    assert back == moment and back.utcoffset() == timedelta(hours=5, minutes=30)
    assert round_trip(moment.replace(tzinfo=None), datetime).tzinfo is None


def test_frozen_dataclass_and_init_false_field() -> None:
    order = Order(UUID(int=7), [Item("a", 2, frozenset({"x"}))], Decimal("9.90"), Color.RED,
                  datetime(2024, 1, 2, 3, 4, 5), Point(1, 2.0), {3: "three"})  # fmt: skip
    order.checksum = 42
    back = round_trip(order, Order)
    assert same(back, order) and back.checksum == 42
    assert same(round_trip(Point(1, math.nan), Point), Point(1, math.nan))


def test_hints_compile_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert round_trip([Point(1, 2.0)], list[Point]) == [Point(1, 2.0)]
    monkeypatch.setattr(payload, "_Compiler", None)  # compiling again would now fail
    assert round_trip([Point(3, 4.0)], list[Point]) == [Point(3, 4.0)]


def test_hints_of_functions_and_methods() -> None:
    class Service:
        def run(self, order: Order, count: int, anything) -> list[int]:
            return []

    def free(a: str, b: dict[str, int] | None = None):
        return None

    assert hints_of(Service.run) == ((Order, int, Any), list[int])
    assert hints_of(Service().run) == ((Order, int, Any), list[int])
    assert hints_of(free) == ((str, dict[str, int] | None), Any)


def test_args_round_trip() -> None:
    hints = [int, Cat | Dog, dict[int, str]]
    args = [1, Dog("rex"), {2: "b"}]
    datas = encode_args(args, hints)
    assert len(datas) == 3 and decode_args(datas, hints) == args


# --- wire format ---------------------------------------------------------------------------


def test_json_is_compact_and_ascii() -> None:
    assert encode({"é": [1, 2]}, dict[str, list[int]]) == b'{"\\u00e9":[1,2]}'
    assert encode(Item("a", 1), Item) == b'{"sku":"a","qty":1,"tags":[]}'
    assert encode(Level.HIGH, Level) == b"2"
    assert encode(Color.RED, Color) == b'"red"'
    assert encode(timedelta(seconds=1, microseconds=5), timedelta) == b"1000005"
    assert encode({3: "x"}, dict[int, str]) == b'[[3,"x"]]'


@pytest.mark.parametrize(
    ("value", "json"),
    [
        (b"hi", b'{"$bytes":"aGk="}'),
        ((1, "a"), b'{"$tuple":[1,"a"]}'),
        ({2, 1}, b'{"$set":[1,2]}'),
        (frozenset({"b", "a"}), b'{"$frozenset":["a","b"]}'),
        (datetime(2024, 1, 2, 3, 4, 5), b'{"$datetime":"2024-01-02T03:04:05"}'),
        (date(2024, 1, 2), b'{"$date":"2024-01-02"}'),
        (time(3, 4, 5), b'{"$time":"03:04:05"}'),
        (timedelta(milliseconds=1), b'{"$timedelta":1000}'),
        (UUID(int=1), b'{"$uuid":"00000000-0000-0000-0000-000000000001"}'),
        (Decimal("1.10"), b'{"$decimal":"1.10"}'),
        (math.inf, b'{"$float":"Infinity"}'),
        (-math.inf, b'{"$float":"-Infinity"}'),
        (math.nan, b'{"$float":"NaN"}'),
        ({1: "a"}, b'{"$dict":[[1,"a"]]}'),
        ([1, 2.5, "x", None, True, {"k": []}], b'[1,2.5,"x",null,true,{"k":[]}]'),
    ],
)
def test_any_tagged_forms(value: object, json: bytes) -> None:
    assert encode(value) == json
    assert same(decode(json), value)


def test_single_dollar_key_dicts_are_escaped() -> None:
    assert encode({"$tuple": [1]}) == b'{"$dict":[["$tuple",[1]]]}'
    assert encode({"$x": 1, "y": 2}) == b'{"$x":1,"y":2}'  # two keys can't be a tag
    assert encode([{"$dict": 1}]) == b'[{"$dict":[["$dict",1]]}]'
    for value in ({"$tuple": [1]}, {"$dict": []}, {"$bytes": "aGk="}, {"$": None}):
        assert same(round_trip(value), value)
        assert same(round_trip(value, dict), value)
    # Under a dict[str, V] hint, keys are never tags: no escaping needed.
    assert encode({"$x": 1}, dict[str, int]) == b'{"$x":1}'
    assert round_trip({"$x": 1}, dict[str, int]) == {"$x": 1}


def test_set_encoding_is_sorted_by_json_text() -> None:
    a = {f"k{i}" for i in range(50)}
    b = set(sorted(a, reverse=True))
    assert encode(a, set[str]) == encode(b, set[str])
    assert encode(a) == encode(b)
    assert encode({10, 9, -1}, set[int]) == b"[-1,10,9]"
    assert encode(frozenset({Point(2, 0.5), Point(1, 0.5)}), frozenset[Point]) == (
        b'[{"x":1,"y":0.5},{"x":2,"y":0.5}]'
    )


def test_set_encoding_does_not_depend_on_hash_seed() -> None:
    script = (
        "from infinitic_streams.payload import encode;"
        "print(encode({'pear', 'apple', 'fig', 'kiwi', 'plum', 'lime'}, set[str]))"
    )
    root = str(Path(__file__).resolve().parent.parent)
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert outputs == {"""b'["apple","fig","kiwi","lime","pear","plum"]'\n"""}


def test_union_tagging_decision() -> None:
    assert encode(3, int | str) == b"3" and encode("3", int | str) == b'"3"'
    assert encode(3, int | float) == b"3" and encode(3.0, int | float) == b"3.0"
    assert encode(None, str | None) == b"null"
    assert encode([1], list[int] | dict[str, int]) == b"[1]"
    assert encode(Cat("tom"), Cat | Dog) == b'{"$type":"Cat","value":{"name":"tom"}}'
    assert encode(b"x", bytes | str) == b'{"$type":"bytes","value":"eA=="}'
    assert encode("x", bytes | str) == b'{"$type":"str","value":"x"}'
    assert encode(date(2024, 1, 2), date | str) == b'{"$type":"date","value":"2024-01-02"}'
    stamp = datetime(2024, 1, 2, 3, 4)
    assert encode(stamp, datetime | date) == b'{"$type":"datetime","value":"2024-01-02T03:04:00"}'
    assert encode(stamp.date(), datetime | date) == b'{"$type":"date","value":"2024-01-02"}'
    assert encode(math.nan, float | str) == b'{"$type":"float","value":"NaN"}'
    assert encode(None, Cat | Dog | None) == b"null"
    assert encode(7, float | None) == b"7" and round_trip(7, float | None) == 7
    assert decode(b'{"$type":"Dog","value":{"name":"rex"}}', Cat | Dog) == Dog("rex")


def test_union_prefers_exact_type_over_subclass() -> None:
    # IntEnum is an int subclass: under int | Level, Level members keep their own tag.
    assert encode(Level.LOW, int | Level) == b'{"$type":"Level","value":1}'
    assert encode(1, Level | int) == b'{"$type":"int","value":1}'
    assert round_trip(Level.LOW, int | Level) is Level.LOW
    assert same(round_trip(True, int | str), True)  # a bool goes through the int member
    assert same(round_trip(True, int | bool), True) and same(round_trip(1, int | bool), 1)


def test_dataclasses_evolve() -> None:
    assert decode(encode(OrderV1(5), OrderV1), OrderV2) == OrderV2(5)
    newer = OrderV2(5, "SAVE", ["a"])
    assert decode(encode(newer, OrderV2), OrderV1) == OrderV1(5)
    assert decode(b'{"id":1,"unknown":{"deep":[1]}}', OrderV2) == OrderV2(1)


def test_recursive_dataclasses() -> None:
    leaf = Node("leaf")
    tree = Node("root", [Node("a", [leaf, leaf]), Node("b")])
    assert round_trip(tree, Node) == tree
    assert round_trip([tree], list[Node]) == [tree]
    deep = Tree(1, Tree(2, None, Tree(3)), Tree(4))
    assert round_trip(deep, Tree) == deep
    assert round_trip({"t": deep}, dict[str, Tree | None]) == {"t": deep}


# --- errors --------------------------------------------------------------------------------


def fails(call: Callable[[], object]) -> SerializationError:
    with pytest.raises(SerializationError) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("args", "hints", "path", "type_name"),
    [
        ([1, Basket("ann", [1, 2, 3, "4"])], [int, Basket], "args[1].items[3]", "str"),
        (["x"], [int], "args[0]", "str"),
        ([1, 2.5], [int, int], "args[1]", "float"),
        ([{"a": [1, None]}], [dict[str, list[int]]], "args[0]['a'][1]", "NoneType"),
        ([{1: 2}], [dict[str, int]], "args[0][1]", "int"),
        ([{5: "x"}], [dict[int, int]], "args[0][5]", "str"),
        ([{"k": {2: object()}}], [Any], "args[0]['k'][2]", "object"),
        ([(1, "x")], [tuple[int, int]], "args[0][1]", "str"),
        ([(1, 2, 3)], [tuple[int, int]], "args[0]", "tuple"),
        ([{"x"}], [set[int]], "args[0][0]", "str"),
        (
            [Node("a", [Node("b", [Node(3)])])],
            [Node],
            "args[0].children[0].children[0].name",
            "int",
        ),
        ([Cat("c")], [Dog | None], "args[0]", "Cat"),
        ([[1, lambda: 1]], [list[Any]], "args[0][1]", "function"),
        ([frozenset({1})], [set[int]], "args[0]", "frozenset"),
        ([datetime(2024, 1, 1)], [date], "args[0]", "datetime"),
        ([Point(1, 2.0)], [Any], "args[0]", "Point"),
        ([Level.LOW], [Any], "args[0]", "Level"),
        ([[Sneaky()]], [Any], "args[0][0]", "Sneaky"),
        ([b"x"], [str], "args[0]", "bytes"),
    ],
)
def test_encode_errors_name_path_and_type(
    args: list[object], hints: list[object], path: str, type_name: str
) -> None:
    error = fails(lambda: encode_args(args, hints))
    assert (error.path, error.type_name) == (path, type_name), error
    assert str(error).startswith(path)


def test_unhinted_dataclass_and_enum_ask_for_a_hint() -> None:
    error = fails(lambda: encode(Point(1, 2.0)))
    assert "dataclass Point needs a type hint" in error.reason
    assert "annotate the parameter or return type" in error.reason
    assert "Enum Color needs a type hint" in fails(lambda: encode([Color.RED])).reason


@pytest.mark.parametrize("value", [lambda: 1, object(), Sneaky(), Plain(), bytearray(b"x"), ...])
def test_unsupported_values_raise_and_never_pickle(value: object) -> None:
    error = fails(lambda: encode(value))
    assert error.type_name == type(value).__name__ and error.path == "value"


def test_socket_is_not_encodable() -> None:
    with socket.socket() as sock:
        assert fails(lambda: encode({"s": sock})).path == "value['s']"


@pytest.mark.parametrize(
    ("data", "hint", "path", "type_name"),
    [
        (b'"x"', int, "value", "int"),
        (b"1.5", int, "value", "int"),
        (b'{"x":1}', Point, "value.y", "float"),
        (b'{"x":"1","y":2}', Point, "value.x", "int"),
        (b'{"owner":"a","items":[1,2,3,"4"]}', Basket, "value.items[3]", "int"),
        (b'"not base64!"', bytes, "value", "bytes"),
        (b'"2024-13-01"', date, "value", "date"),
        (b'"yesterday"', datetime, "value", "datetime"),
        (b'"not-a-uuid"', UUID, "value", "UUID"),
        (b'"1,5"', Decimal, "value", "Decimal"),
        (b'"blue"', Color, "value", "Color"),
        (b"7", Level, "value", "Level"),
        (b"{", Any, "value", "Any"),
        (b"\xff", str, "value", "str"),
        (b"NaN", float, "value", "float"),
        (b'"nan"', float, "value", "float"),
        (b'{"$nope":1}', Any, "value", "Any"),
        (b'{"a":{"$set":[[1]]}}', Any, "value['a']", "set"),
        (b'[[1,"a"],[2]]', dict[int, str], "value", "dict[int, str]"),
        (b'[[1,"a"],[2,3]]', dict[int, str], "value[2]", "str"),
        (b'{"$type":"Cow","value":{}}', Cat | Dog, "value", "Cat | Dog"),
        (b'{"name":"x"}', Cat | Dog, "value", "Cat | Dog"),
        (b"null", Cat | Dog, "value", "Cat | Dog"),
        (b"[1,2,3]", tuple[int, int], "value", "tuple[int, int]"),
        (b'{"name":"a","children":[{"name":1}]}', Node, "value.children[0].name", "str"),
        (b'"x"', float | None, "value", "float"),
    ],
)
def test_decode_errors_name_path_and_expected_type(
    data: bytes, hint: object, path: str, type_name: str
) -> None:
    error = fails(lambda: decode(data, hint))
    assert (error.path, error.type_name) == (path, type_name), error


def test_decode_args_error_path() -> None:
    error = fails(lambda: decode_args([b"1", b'{"owner":"a","items":[true, "x"]}'], [int, Basket]))
    assert (error.path, error.type_name) == ("args[1].items[1]", "int")
    assert "expected int, got JSON string" in error.reason


def test_missing_required_field_names_it() -> None:
    error = fails(lambda: decode(b'{"coupon":"x"}', OrderV2))
    assert (error.path, error.type_name) == ("value.id", "int")
    assert "missing required field 'id' of OrderV2" in error.reason


def test_arity_mismatch() -> None:
    assert "expected 2 arguments, got 1" in fails(lambda: encode_args([1], [int, int])).reason
    assert fails(lambda: decode_args([b"1", b"2"], [int])).path == "args"


@pytest.mark.parametrize(
    ("hint", "path", "type_name"),
    [
        (Plain, "value", "Plain"),
        (Callable[[int], int], "value", "Callable[[int], int]"),
        (list[Plain], "value", "Plain"),
        (HasPlain, "value.bad", "Plain"),
        (dict[str, typing.Callable], "value", "Callable"),
    ],
)
def test_unsupported_hints(hint: object, path: str, type_name: str) -> None:
    for call in (lambda: encode(None, hint), lambda: decode(b"null", hint)):
        error = fails(call)
        assert (error.path, error.type_name) == (path, type_name), error
        assert "unsupported type hint" in error.reason


def test_a_failed_compile_caches_nothing() -> None:
    fails(lambda: encode(HasPlain(1, Plain()), HasPlain))
    assert fails(lambda: encode(HasPlain(1, Plain()), HasPlain)).path == "value.bad"


def test_constructor_errors_are_reported() -> None:
    @dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    error = fails(lambda: decode(b'{"n":-1}', Positive))
    assert "n must be positive" in error.reason and error.type_name == "Positive"


def test_huge_and_circular_values() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert fails(lambda: encode(loop)).type_name == "list"
    assert fails(lambda: encode(10**5000, int)).type_name == "int"


@pytest.mark.parametrize(
    "offset", [timedelta(microseconds=1), -timedelta(hours=5, seconds=7, microseconds=3)]
)
def test_a_utc_offset_with_microseconds_round_trips(offset: timedelta) -> None:
    """Python 3.11's fromisoformat drops the microseconds of an offset: the codec keeps them."""
    zone = timezone(offset)
    for value in (time(1, 2, 3, 4, tzinfo=zone), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=zone)):
        decoded = round_trip(value)
        assert decoded == value and decoded.utcoffset() == offset  # type: ignore[union-attr]
