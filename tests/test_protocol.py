"""Tests of the envelope protocol: round trips, hostile input, and the schema evolution rules."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
from fastavro.utils import generate_many
from hypothesis import given
from hypothesis import strategies as st

from infinitic_streams.protocol import (
    CURRENT_VERSION,
    DEFAULT_SCHEMAS,
    HEADER_SIZE,
    MAGIC,
    MESSAGE_TYPES,
    CancelTask,
    CancelWorkflow,
    ChildEnded,
    DeadLetter,
    DispatchWorkflow,
    Envelope,
    EnvelopeDecodeError,
    ErrorInfo,
    ExecuteTask,
    GroupAction,
    GroupRequest,
    ListWorkflows,
    Message,
    ParentWorkflow,
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    RetryWorkflow,
    ScheduleAction,
    ScheduleDefinition,
    ScheduledWorkflowEnded,
    ScheduleRequest,
    SchemaError,
    SchemaSet,
    SendSignal,
    TagUpdate,
    TaskCompleted,
    TaskFailed,
    WorkflowResult,
    WorkflowStatus,
    decode,
    decode_record,
    encode,
    encode_record,
    messages,
    reader_schema,
    to_record,
    writer_schema,
)
from infinitic_streams.protocol.schemas import find_schema_root, version_files

SCHEMA_FOLDER = Path(__file__).resolve().parents[1] / "avro" / "envelope"
VERSIONS = sorted(version_files(SCHEMA_FOLDER))

ERROR = ErrorInfo(type_name="builtins.ValueError", message="bad", traceback="Traceback ...")
ARGS = (Payload(data=b"1"), Payload(data='{"é": [null]}'.encode()))

EXAMPLES: list[Message] = [
    DispatchWorkflow(
        workflow_id="w-1",
        workflow_name="Order",
        method_name="run",
        args=ARGS,
        tags=("customer:1", "vip"),
        meta={"source": "api"},
        reply_to="client-7",
    ),
    DispatchWorkflow(
        workflow_id="w-2", workflow_name="Order", method_name="run", args=(), tags=(), meta={}
    ),
    ExecuteTask(
        task_id="t-1",
        service_name="Payments",
        method_name="charge",
        args=ARGS,
        attempt=3,
        timeout_seconds=2.5,
        workflow_id="w-1",
        workflow_name="Order",
        tags=("x",),
        meta={"k": "v"},
    ),
    ExecuteTask(
        task_id="t-2",
        service_name="Payments",
        method_name="refund",
        args=(),
        attempt=1,
        workflow_id="w-1",
        workflow_name="Order",
        tags=(),
        meta={},
    ),
    TaskCompleted(task_id="t-1", workflow_id="w-1", attempt=1, result=Payload(data=b"null")),
    TaskFailed(task_id="t-1", workflow_id="w-1", attempt=2, error=ERROR),
    SendSignal(
        workflow_id="w-1", signal_id="s-1", channel="approvals", value=Payload(data=b"true")
    ),
    CancelWorkflow(workflow_id="w-1", reason="customer asked"),
    RetryWorkflow(workflow_id="w-1"),
    WorkflowResult(workflow_id="w-1", status=WorkflowStatus.RUNNING),
    WorkflowResult(workflow_id="w-1", status=WorkflowStatus.COMPLETED, result=Payload(data=b"42")),
    WorkflowResult(workflow_id="w-1", status=WorkflowStatus.FAILED, error=ERROR),
    DeadLetter(
        reason="bad bytes",
        source_topic="infinitic.engine",
        source_partition=4,
        source_offset=2**40,
        key=b"w-1",
        value=b"\x00\xff",
    ),
    DeadLetter(reason="tombstone", source_topic="t", source_partition=0, source_offset=0),
    QueryWorkflow(
        request_id="r-1", workflow_id="w-1", query=QueryKind.HISTORY, reply_to="ns.client.c1"
    ),
    QueryReply(request_id="r-1", workflow_id="w-1", found=True, data=b'{"status":"RUNNING"}'),
    DispatchWorkflow(
        workflow_id="w-1.3",
        workflow_name="Child",
        method_name="run",
        args=(),
        tags=(),
        meta={},
        parent=ParentWorkflow(workflow_id="w-1", workflow_name="Order", seq=3),
    ),
    SendSignal(
        workflow_id="w-1",
        signal_id="s-2",
        channel="approvals",
        value=Payload(data=b'"yes"'),
        reply_to="2:c1",
        sender="w-9",
    ),
    CancelWorkflow(workflow_id="w-1", reason="asked", request_id="r-2", reply_to="2:c1"),
    ChildEnded(
        workflow_id="w-1",
        seq=3,
        child_id="w-1.3",
        child_name="Child",
        status=WorkflowStatus.COMPLETED,
        result=Payload(data=b"1"),
    ),
    ChildEnded(
        workflow_id="w-1",
        seq=4,
        child_id="c",
        child_name="Child",
        status=WorkflowStatus.FAILED,
        error=ERROR,
    ),
    CancelTask(task_id="w-1:2", workflow_id="w-1", reason="workflow canceled"),
    TagUpdate(
        tag="user:7",
        workflow_name="Order",
        workflow_id="w-1",
        status=WorkflowStatus.RUNNING,
        updated_at_ms=1,
    ),
    TagUpdate(tag="user:7", workflow_name="Order", workflow_id="w-1", updated_at_ms=2),
    GroupRequest(
        request_id="r-3",
        tag="user:7",
        workflow_name="Order",
        action=GroupAction.SIGNAL,
        channel="approvals",
        value=Payload(data=b"1"),
        reply_to="1:c2",
    ),
    GroupRequest(
        request_id="r-4", tag="t", workflow_name="Order", action=GroupAction.IDS, reply_to="1:c2"
    ),
    ListWorkflows(request_id="r-5", reply_to="2:c3", limit=0),
    ListWorkflows(
        request_id="r-6",
        reply_to="2:c3",
        workflow_name="Order",
        status="FAILED",
        tag="user:7",
        limit=50,
        after="0000019a2b3c4d5e:w-9",
    ),
    ScheduleRequest(
        request_id="r-7",
        schedule_id="nightly",
        action=ScheduleAction.CREATE,
        reply_to="2:c3",
        definition=ScheduleDefinition(
            workflow_name="Order",
            method_name="run",
            args=(Payload(data=b"1"),),
            tags=("user:7",),
            cron="*/2 * * * * *",
            timezone="Europe/Paris",
            overlap="skip",
        ),
    ),
    ScheduleRequest(request_id="r-8", schedule_id="", action=ScheduleAction.LIST, reply_to="0:c"),
    ScheduledWorkflowEnded(
        schedule_id="nightly",
        workflow_id="nightly@2026-01-01T00:00:00Z",
        status=WorkflowStatus.FAILED,
    ),
    DispatchWorkflow(
        workflow_id="nightly@2026-01-01T00:00:00Z",
        workflow_name="Order",
        method_name="run",
        args=(),
        tags=(),
        meta={},
        schedule_id="nightly",
    ),
]


def envelope_of(message: Message) -> Envelope:
    return Envelope(message_id="m-1", sent_at_ms=1_732_000_000_000, message=message)


ENCODED = [encode(envelope_of(message)) for message in EXAMPLES]


def header(version: int) -> bytes:
    return MAGIC + version.to_bytes(2, "big")


def raw_schema(version: int) -> dict[str, Any]:
    return json.loads((SCHEMA_FOLDER / f"v{version}.avsc").read_text(encoding="utf-8"))


def named_types(schema: Any, found: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every record and enum defined in a raw (JSON) schema, by short name."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, found)
    elif isinstance(schema, dict):
        if schema["type"] in ("record", "enum"):
            found[schema["name"]] = schema
        for field in schema.get("fields", ()):
            named_types(field["type"], found)
        named_types(schema.get("items"), found)
        named_types(schema.get("values"), found)
    return found


def union_branch_names(schema: dict[str, Any]) -> list[str]:
    (message,) = (field for field in schema["fields"] if field["name"] == "message")
    return [branch if isinstance(branch, str) else branch["name"] for branch in message["type"]]


def plain(value: Any) -> Any:
    """A fastavro datum without tuple notation, tuples or enum members, for comparisons."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        return plain(value[1])
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, WorkflowStatus):
        return value.value
    return value


def assert_contains(read: Any, written: Any, path: str = "") -> None:
    """Everything written is read back; `read` may have more record fields (newer schema)."""
    if isinstance(written, dict) and isinstance(read, dict):
        for key, value in written.items():
            assert key in read, f"{path}.{key} missing"
            assert_contains(read[key], value, f"{path}.{key}")
    else:
        assert read == written, path


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    envelope = envelope_of(message)
    data = encode(envelope)
    assert data[:HEADER_SIZE] == header(CURRENT_VERSION)
    decoded = decode(data)
    assert decoded == envelope
    assert type(decoded.message) is type(message)


def test_examples_cover_every_message_kind() -> None:
    assert {type(message) for message in EXAMPLES} == set(MESSAGE_TYPES)


def test_decoded_collections_are_tuples() -> None:
    decoded = decode(ENCODED[0]).message
    assert isinstance(decoded, DispatchWorkflow)
    assert isinstance(decoded.args, tuple)
    assert isinstance(decoded.tags, tuple)


def test_decode_accepts_bytearray() -> None:
    assert decode(bytearray(ENCODED[0])) == envelope_of(EXAMPLES[0])


def test_encode_rejects_a_non_message() -> None:
    envelope = Envelope(message_id="m", sent_at_ms=0, message=Payload(data=b"1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a message type"):
        encode(envelope)


# --- the dataclasses mirror the current schema -------------------------------------------------


def test_message_union_matches_schema() -> None:
    names = union_branch_names(raw_schema(CURRENT_VERSION))
    assert names == [cls.__name__ for cls in MESSAGE_TYPES]
    assert set(typing.get_args(Message)) == set(MESSAGE_TYPES)


@pytest.mark.parametrize("name", sorted(named_types(raw_schema(CURRENT_VERSION))))
def test_dataclass_matches_schema(name: str) -> None:
    avro_type = named_types(raw_schema(CURRENT_VERSION))[name]
    cls = getattr(messages, name)
    if avro_type["type"] == "enum":
        assert [member.value for member in cls] == avro_type["symbols"]
        return
    assert dataclasses.is_dataclass(cls)
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == [f["name"] for f in avro_type["fields"]]
    for field, avro_field in zip(fields, avro_type["fields"], strict=True):
        has_default = field.default is not dataclasses.MISSING
        assert has_default == ("default" in avro_field), f"{name}.{field.name}"
        if has_default:
            assert field.default == avro_field["default"], f"{name}.{field.name}"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_record_and_field_is_documented(version: int) -> None:
    for name, avro_type in named_types(raw_schema(version)).items():
        assert avro_type.get("doc"), name
        for field in avro_type.get("fields", ()):
            assert field.get("doc"), f"{name}.{field['name']}"


# --- hostile input ------------------------------------------------------------------------------


def assert_decodes_or_refuses(data: bytes) -> None:
    with contextlib.suppress(EnvelopeDecodeError):
        decode(data)


@given(st.binary())
def test_garbage_only_raises_envelope_decode_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)


@given(st.binary())
def test_garbage_body_after_valid_header_only_raises_envelope_decode_error(body: bytes) -> None:
    assert_decodes_or_refuses(header(CURRENT_VERSION) + body)


@given(st.sampled_from(ENCODED), st.data())
def test_mutated_envelopes_only_raise_envelope_decode_error(
    encoded: bytes, data: st.DataObject
) -> None:
    mutated = bytearray(encoded)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(HEADER_SIZE, len(mutated) - 1))
        mutated[index] = data.draw(st.integers(0, 255))
    assert_decodes_or_refuses(bytes(mutated))


@pytest.mark.parametrize("data", ENCODED, ids=[type(m).__name__ for m in EXAMPLES])
def test_every_truncation_is_refused(data: bytes) -> None:
    for length in range(len(data)):
        with pytest.raises(EnvelopeDecodeError):
            decode(data[:length])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short: 0 bytes"),
        (b"IS\x00", "too short: 3 bytes"),
        (b"\x00\x00\x00\x01" + ENCODED[0][HEADER_SIZE:], "not an infinitic-streams envelope"),
        (b'{"json": true}', "not an infinitic-streams envelope"),
        (
            header(CURRENT_VERSION + 1) + ENCODED[0][HEADER_SIZE:],
            rf"written by a newer infinitic-streams \(schema v{CURRENT_VERSION + 1}\); "
            "upgrade this process",
        ),
        (header(0) + ENCODED[0][HEADER_SIZE:], "unknown envelope schema version v0"),
        (ENCODED[0][:-1], "corrupt or truncated envelope body"),
        (header(CURRENT_VERSION), "corrupt or truncated envelope body"),
        (header(CURRENT_VERSION) + b"\x7f", "corrupt or truncated envelope body"),
        (ENCODED[0] + b"\x00", "1 trailing bytes after the record"),
        (None, "expected bytes, got NoneType"),
    ],
)
def test_decode_error_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeDecodeError, match=reason):
        decode(data)


# --- released versions are frozen --------------------------------------------------------------


def released() -> dict[str, str]:
    """File name -> sha256 from RELEASED."""
    entries: dict[str, str] = {}
    for line in (SCHEMA_FOLDER / "RELEASED").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, name = line.split()
        assert name not in entries, f"{name} listed twice in RELEASED"
        entries[name] = digest
    return entries


def test_released_versions_are_unchanged() -> None:
    for name, digest in released().items():
        path = SCHEMA_FOLDER / name
        assert path.is_file(), f"released {name} is missing"
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        assert actual == digest, (
            f"{name} was released and must not change; copy it to v{VERSIONS[-1] + 1}.avsc "
            "and edit the copy instead (see avro/README.md)"
        )


def test_every_version_but_the_newest_is_released() -> None:
    assert {f"v{version}.avsc" for version in VERSIONS[:-1]} <= set(released())


def test_versions_are_contiguous_from_one() -> None:
    assert list(range(1, len(VERSIONS) + 1)) == VERSIONS
    assert sorted(path.name for path in SCHEMA_FOLDER.glob("*.avsc")) == sorted(
        f"v{version}.avsc" for version in VERSIONS
    ), "schema files must be named vN.avsc"


def check_evolution(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Assert that `new` only adds defaulted fields, appended branches and appended symbols."""
    old_names = union_branch_names(old)
    assert union_branch_names(new)[: len(old_names)] == old_names, "union branches only appended"
    new_types = named_types(new)
    for name, old_type in named_types(old).items():
        assert name in new_types, f"{name} removed"
        if old_type["type"] == "enum":
            symbols = new_types[name]["symbols"]
            assert symbols[: len(old_type["symbols"])] == old_type["symbols"], name
            continue
        old_fields = {field["name"] for field in old_type["fields"]}
        new_fields = new_types[name]["fields"]
        assert old_fields <= {field["name"] for field in new_fields}, f"field removed from {name}"
        for field in new_fields:
            if field["name"] not in old_fields:
                assert "default" in field, f"new field {name}.{field['name']} needs a default"


def test_versions_only_add_defaulted_fields_and_appended_branches() -> None:
    for version in VERSIONS[1:]:
        check_evolution(raw_schema(version - 1), raw_schema(version))


def test_evolution_check_catches_a_field_without_default() -> None:
    current = raw_schema(CURRENT_VERSION)
    check_evolution(current, future_schema(current))
    broken = future_schema(current)
    del named_types(broken)["DispatchWorkflow"]["fields"][-1]["default"]
    with pytest.raises(AssertionError, match="needs a default"):
        check_evolution(current, broken)


# --- schema resolution --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_current_schema_reads_every_version(version: int) -> None:
    for written in generate_many(raw_schema(version), 100):
        data = encode_record(written, version=version)
        assert data[:HEADER_SIZE] == header(version)
        assert_contains(plain(to_record(decode(data))), plain(written))


def future_schema(current: dict[str, Any]) -> dict[str, Any]:
    """The current schema plus a defaulted field and a new message kind."""
    future = copy.deepcopy(current)
    dispatch = named_types(future)["DispatchWorkflow"]
    dispatch["fields"].append(
        {"name": "priority", "type": "int", "default": 0, "doc": "Higher runs first."}
    )
    (message,) = (field for field in future["fields"] if field["name"] == "message")
    message["type"].append(
        {
            "type": "record",
            "name": "PauseWorkflow",
            "doc": "Pause a workflow instance.",
            "fields": [{"name": "workflow_id", "type": "string", "doc": "Id of the instance."}],
        }
    )
    return future


def test_old_data_resolves_into_a_future_schema(tmp_path: Path) -> None:
    for version in VERSIONS:
        shutil.copy(SCHEMA_FOLDER / f"v{version}.avsc", tmp_path)
    future_version = CURRENT_VERSION + 1
    future_text = json.dumps(future_schema(raw_schema(CURRENT_VERSION)), indent=2)
    (tmp_path / f"v{future_version}.avsc").write_text(future_text, encoding="utf-8")
    future = SchemaSet.load(tmp_path)
    assert future.current_version == future_version

    # Data written today is read by the future build, the new field taking its default.
    for message, data in zip(EXAMPLES, ENCODED, strict=True):
        record = decode_record(data, schemas=future)
        expected = plain(to_record(envelope_of(message)))
        if isinstance(message, DispatchWorkflow):
            expected["message"]["priority"] = 0
        assert plain(record) == expected
        assert record["message"][0] == f"infinitic.{type(message).__name__}"

    # Data written by the future build: readable there, refused here with a clear reason.
    pause = {"message_id": "m", "sent_at_ms": 0, "message": ("infinitic.PauseWorkflow", {})}
    pause["message"][1]["workflow_id"] = "w-1"
    data = encode_record(pause, schemas=future)
    assert decode_record(data, schemas=future)["message"] == (
        "infinitic.PauseWorkflow",
        {"workflow_id": "w-1"},
    )
    with pytest.raises(EnvelopeDecodeError, match="newer infinitic-streams"):
        decode(data)


# --- schema loading -----------------------------------------------------------------------------


def test_default_schemas_come_from_the_repository() -> None:
    assert find_schema_root() == SCHEMA_FOLDER.parent
    assert DEFAULT_SCHEMAS.folder == SCHEMA_FOLDER
    assert VERSIONS[-1] == CURRENT_VERSION
    assert reader_schema() is writer_schema(CURRENT_VERSION)
    assert reader_schema()["name"] == "infinitic.Envelope"


def test_unknown_writer_version_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no envelope schema v0"):
        writer_schema(0)


def test_loading_an_empty_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no envelope schema"):
        SchemaSet.load(tmp_path)


def test_loading_a_broken_schema_fails(tmp_path: Path) -> None:
    (tmp_path / "v1.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    with pytest.raises(SchemaError, match=r"cannot load Avro schema .*v1\.avsc"):
        SchemaSet.load(tmp_path)
