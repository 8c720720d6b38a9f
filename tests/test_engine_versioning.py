"""Versioning on the engine: workflows started with old code run across a deploy of changed
code (`if self.patched(...)`) and finish on the old path, new ones take the new path; a
later deploy that deprecates the patch still replays histories recorded with it. Each test
runs with the cache of live instances, and with every step a replay of the history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload
from infinitic_streams.protocol import (
    ExecuteTask,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import WorkflowDescription

from .engine_harness import CLIENT, Harness, dispatch, harnesses, names
from .test_versioning import VersionedNoMarker, VersionedV1, VersionedV2, VersionedV3

CACHE = pytest.mark.parametrize("drop_cache", [False, True], ids=["cached", "replayed"])


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


def answer(h: Harness, value: int) -> dict[str, str]:
    """Complete every task sent; the method of each, by workflow id."""
    sent = h.take(ExecuteTask)
    for task in sent:
        h.reply(task, value, int)
    return {task.workflow_id: task.method_name for task in sent}


def results(h: Harness) -> dict[str, str]:
    found = {}
    for result in h.take(WorkflowResult):
        assert result.status == WorkflowStatus.COMPLETED, result.error
        found[result.workflow_id] = payload.decode(result.result.data, str)
    return found


def describe(h: Harness, workflow_id: str) -> WorkflowDescription:
    query = QueryWorkflow(
        request_id="d", workflow_id=workflow_id, query=QueryKind.DESCRIBE, reply_to=CLIENT
    )
    h.send(query)
    [reply] = h.take(QueryReply)
    return payload.decode(reply.data, WorkflowDescription)  # type: ignore[no-any-return]


@CACHE
def test_old_instances_finish_on_the_old_path_new_ones_take_the_new_path(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([VersionedV1])
    h.drop_cache = drop_cache
    h.send(dispatch("old-1", "Versioned", [b"1"]))
    h.send(dispatch("old-2", "Versioned", [b"2"]))
    first_1, first_2 = h.take(ExecuteTask)
    h.reply(first_1, 10, int)
    [old_1] = h.take(ExecuteTask)  # old-1 took the old path before the deploy
    assert old_1.method_name == "old"

    h.redeploy([VersionedV2])
    h.send(dispatch("new-1", "Versioned", [b"3"]))
    h.reply(old_1, 20, int)  # old-1 replays its V1 history with V2: patched() is False
    h.reply(first_2, 30, int)  # old-2 reaches the change only now: the new path
    assert answer(h, 40) == {"old-2": "new", "new-1": "first"}
    assert answer(h, 50) == {"new-1": "new"}
    assert results(h) == {"old-1": "old 20", "old-2": "new 40", "new-1": "new 50"}
    assert "PatchRecorded" not in names(h.history("old-1"))
    assert names(h.history("new-1")).count("PatchRecorded") == 1
    assert describe(h, "new-1").patches == ["new-step"]
    assert describe(h, "old-1").patches == []


@CACHE
def test_a_deploy_that_deprecates_the_patch_replays_histories_with_the_marker(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([VersionedV2])
    h.drop_cache = drop_cache
    h.send(dispatch("v-1", "Versioned", [b"1"]))
    assert answer(h, 1) == {"v-1": "first"}
    [new_task] = h.take(ExecuteTask)  # the marker is recorded, `new` runs
    h.redeploy([VersionedV3])
    h.drop_cache = True  # the new code replays the history recorded by V2
    h.send(dispatch("v-2", "Versioned", [b"2"]))
    h.reply(new_task, 5, int)
    assert answer(h, 7) == {"v-2": "first"}
    assert answer(h, 8) == {"v-2": "new"}
    assert results(h) == {"v-1": "new 5", "v-2": "new 8"}
    assert "PatchRecorded" not in names(h.history("v-2"))


def test_code_that_drops_the_patch_without_deprecating_it_fails_naming_the_marker(
    harness: Callable[..., Harness],
) -> None:
    h = harness([VersionedV2])
    h.send(dispatch("d-1", "Versioned", [b"1"]))
    answer(h, 1)
    [new_task] = h.take(ExecuteTask)
    h.redeploy([VersionedNoMarker])
    h.reply(new_task, 5, int)
    [result] = h.take(WorkflowResult)
    assert result.status == WorkflowStatus.FAILED
    assert result.error.type_name == "NonDeterministicWorkflow"
    assert "patch new-step" in result.error.message and "task Ops.new" in result.error.message


def test_a_patch_marker_is_published_on_the_events_topic(
    harness: Callable[..., Harness],
) -> None:
    h = harness([VersionedV2])
    h.send(dispatch("e-1", "Versioned", [b"1"]))
    answer(h, 1)
    [patch] = [e for e in h.events if e["type"] == "infinitic.patch.recorded"]
    assert patch["data"] == {"seq": 2, "change_id": "new-step"}
