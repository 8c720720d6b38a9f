"""`infinitic-streams signal | cancel | retry`, by ID and by tag group, and `describe` showing
children and signals waiting, against a real broker. One Worker (engine and the Chores
service) runs the workflows of `tests/apps/language.py` for the whole module; the commands run
from a directory without infinitic.toml, with --namespace and --bootstrap (a group signal also
with a configuration naming the classes, to check its value before sending)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from infinitic_streams import InfiniticClient, Worker, WorkflowStatus

from .apps import language
from .test_cli import cli, write_config

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 2
WAIT_S = 30.0


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test runs in its own directory (no infinitic.toml unless it writes one)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(ROOT), *sys.path])
    monkeypatch.delenv("INFINITIC_CONFIG", raising=False)


@pytest.fixture(scope="module")
def module_namespace() -> str:
    return f"t-cli-language-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(
    kafka_bootstrap: str, module_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfiniticClient]:
    """A client of the module's namespace, once its Worker's engine is in its group (the
    commands that ask the engine check that first)."""
    kafka = {"bootstrap.servers": kafka_bootstrap}
    worker = Worker(
        kafka,
        module_namespace,
        services=[cls() for cls in language.SERVICES],
        workflows=language.WORKFLOWS,
        state_dir=tmp_path_factory.mktemp("cli-language-state"),
        partitions=PARTITIONS,
        registry=CollectorRegistry(),
    ).start()
    try:
        with InfiniticClient(kafka, module_namespace, PARTITIONS) as opened:
            wait_until(opened.engine_running, "the engine joins its group")
            yield opened
    finally:
        worker.stop()


@pytest.fixture
def where(client: InfiniticClient, kafka_bootstrap: str, module_namespace: str) -> list[str]:
    """The options every command gets here (the Worker runs)."""
    return ["--namespace", module_namespace, "--bootstrap", kafka_bootstrap]


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)
    return found


def ok(*args: str) -> str:
    """Run a command that must succeed; its stdout."""
    code, out, err = cli(*args)
    assert code == 0, (args, out, err)
    return out


def failed(*args: str) -> str:
    """Run a command that must fail (exit code 1); its stderr on one line."""
    code, out, err = cli(*args)
    assert code == 1, (args, out, err)
    return " ".join(err.split())


def waiting_for_signal(client: InfiniticClient, workflow_id: str) -> bool:
    info = client.get_workflow(None, workflow_id).describe()
    return info.status == WorkflowStatus.RUNNING and "signal" in " ".join(info.pending)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- arguments: no Kafka needed --------------------------------------------------------------


def test_an_id_or_a_group_exactly(tmp_path: Path) -> None:
    where = ["--bootstrap", "127.0.0.1:1"]
    assert "Missing CHANNEL: `infinitic-streams signal ID CHANNEL --value JSON`" in failed(
        "signal", "w1", "--value", "1", *where
    )
    assert "Missing ID and CHANNEL" in failed("signal", "--value", "1", *where)
    assert "--tag needs --workflow NAME" in failed(
        "signal", "go", "--tag", "t", "--value", "1", *where
    )
    assert "--workflow needs --tag TAG" in failed("cancel", "--workflow", "Tagged", *where)
    both = failed(
        "signal", "w1", "go", "--tag", "t", "--workflow", "Tagged", "--value", "1", *where
    )
    assert "Give an ID (one workflow) or --tag and --workflow (a group), not both" in both
    assert "not both" in failed("cancel", "w1", "--tag", "t", "--workflow", "Tagged", *where)
    neither = failed("retry", *where)
    assert "Which workflow? `infinitic-streams retry ID` acts on one" in neither
    assert "`infinitic-streams retry --tag TAG --workflow NAME` on a group" in neither
    assert "--wait follows one workflow" in failed(
        "retry", "--tag", "t", "--workflow", "Tagged", "--wait", *where
    )
    bad = failed("signal", "w1", "go", "--value", "yes", *where)
    assert "--value is not JSON" in bad
    assert "--value '\"yes\"'" in bad  # how to quote a string

    # With the class in the configuration, a group signal is checked before it is sent.
    workflows = ("tests.apps.language:Tagged", "tests.apps.language:Deadline")
    write_config(tmp_path / "infinitic.toml", "127.0.0.1:1", workflows=workflows, services=())
    group = ["--tag", "t", "--workflow", "Tagged"]
    assert "Workflow Tagged has no channel 'nope'; its channels: go." in failed(
        "signal", "nope", *group, "--value", '"x"'
    )
    assert "--value: expected str" in failed("signal", "go", *group, "--value", "1")
    assert "Unknown workflow 'Nope'" in failed(
        "signal", "go", "--tag", "t", "--workflow", "Nope", "--value", '"x"'
    )


def test_the_new_commands_are_in_the_help() -> None:
    out = ok("-h")
    for command in ("signal", "cancel", "retry"):
        assert f"  {command}  " in out
    assert "[OPTIONS] [ID] [CHANNEL]" in ok("signal", "-h")
    assert "signal CHANNEL --tag TAG --workflow NAME --value JSON" in ok("signal", "-h")
    assert "[OPTIONS] [ID]" in ok("cancel", "-h")
    assert "signal, cancel and retry --tag TAG --workflow NAME" in " ".join(
        ok("dispatch", "-h").split()
    )


# -- one workflow ----------------------------------------------------------------------------


def test_signal_one_workflow_and_its_refusals(where: list[str]) -> None:
    workflow_id = new_id("deadline")
    assert ok("dispatch", "Deadline", "-a", "60.0", "--id", workflow_id, *where).strip() == (
        workflow_id
    )
    missing = failed("signal", "nobody", "answers", "--value", "1", *where)
    assert "No workflow with id nobody in this namespace" in missing
    channel = failed("signal", workflow_id, "questions", "--value", "1", *where)
    assert "no channel 'questions' (its channels: ['answers'])" in channel
    mismatch = failed("signal", workflow_id, "answers", "--value", '"seven"', *where)
    assert "does not fit channel 'answers'" in mismatch

    out = ok("signal", workflow_id, "answers", "--value", "7", *where)
    assert out.strip() == f"Signal sent to answers of {workflow_id}."
    assert json.loads(ok("result", workflow_id, "--timeout", "30", *where)) == "signal 7"
    ended = failed("signal", workflow_id, "answers", "--value", "8", "-o", "json", *where)
    assert f"workflow Deadline {workflow_id} has ended (COMPLETED)" in ended


def test_signal_json_output_and_describe_signals_waiting(where: list[str]) -> None:
    workflow_id = new_id("approval")
    ok("dispatch", "Approval", "--id", workflow_id, *where)
    for _ in range(2):  # the first is taken; the second is skipped by `where=` and waits
        out = ok("signal", workflow_id, "decisions", "--value", '"maybe"', "-o", "json", *where)
        assert json.loads(out) == {"id": workflow_id, "channel": "decisions", "recorded": True}
    info = json.loads(ok("describe", workflow_id, "-o", "json", *where))
    assert info["signals_waiting"] == {"decisions": 1}
    assert info["children"] == []
    assert any("decisions" in line for line in info["pending"])
    rows = dict(line.split(None, 1) for line in ok("describe", workflow_id, *where).splitlines())
    assert rows["signals"] == "decisions: 1 not received yet"
    out = ok("signal", workflow_id, "decisions", "--value", '"no"', "-o", "yaml", *where)
    assert out.splitlines() == [f'id: "{workflow_id}"', 'channel: "decisions"', "recorded: true"]


def test_cancel_a_parent_then_cancel_again(where: list[str], tmp_path: Path) -> None:
    """Holder waits on its child Lingerer, whose task lingers: describe shows the child, cancel
    ends both; a second cancel says it had ended already."""
    holder, child = new_id("holder"), new_id("lingerer")
    marker = tmp_path / "marker"
    ok("dispatch", "Holder", "-a", json.dumps(child), "-a", json.dumps(str(marker)),
       "--id", holder, *where)  # fmt: skip
    wait_until(lambda: marker.exists() and "started" in marker.read_text(), "the task starts")
    info = json.loads(ok("describe", holder, "-o", "json", *where))
    assert info["children"] == [{"id": child, "name": "Lingerer", "status": "RUNNING"}]
    assert info["signals_waiting"] == {}
    out = ok("describe", holder, *where)
    assert f"children  {child}  Lingerer  RUNNING" in out.splitlines()

    assert ok("cancel", holder, *where).strip() == f"Canceled {holder}."
    canceled = failed("result", child, "--timeout", "30", *where)
    assert f"workflow {child} was canceled" in canceled  # the child went with its parent
    out = ok("cancel", holder, *where)
    assert out.strip() == f"Workflow {holder} had already ended (CANCELED): nothing changed."
    out = ok("cancel", holder, "-o", "json", *where)
    assert json.loads(out) == {"id": holder, "canceled": False, "status": "CANCELED"}
    assert "No workflow with id nobody in this namespace" in failed("cancel", "nobody", *where)
    assert json.loads(ok("describe", holder, "-o", "json", *where))["status"] == "CANCELED"


# -- groups ----------------------------------------------------------------------------------


def test_signal_and_cancel_a_tag_group(
    where: list[str], client: InfiniticClient, kafka_bootstrap: str, module_namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    tag, other = new_id("batch"), new_id("other")
    fine = json.dumps(str(tmp_path / "absent"))  # Tagged's check passes: it waits for `go`
    first = ok("dispatch", "Tagged", "-a", fine, "--tag", tag, "--tag", "extra", *where).strip()
    second = ok("dispatch", "Tagged", "-a", fine, "--tag", tag, *where).strip()
    outsider = ok("dispatch", "Tagged", "-a", fine, "--tag", other, *where).strip()
    assert json.loads(ok("describe", first, "-o", "json", *where))["tags"] == [tag, "extra"]
    group = client.get_workflows("Tagged", tag)
    wait_until(lambda: len(group.ids()) == 2, "both join the group")
    assert sorted(group.ids()) == sorted([first, second])

    # Typed by the configuration's class: the value is checked, then sent to the group.
    workflows = tuple(f"tests.apps.language:{cls.__name__}" for cls in language.WORKFLOWS)
    write_config(tmp_path / "infinitic.toml", kafka_bootstrap, module_namespace, workflows, ())
    out = ok("signal", "go", "--tag", tag, "--workflow", "Tagged", "--value", '"ok"')
    assert out.strip() == f"Signal sent to 2 workflow(s) Tagged tagged {tag}."
    (tmp_path / "infinitic.toml").unlink()
    for workflow_id in (first, second):
        assert json.loads(ok("result", workflow_id, "--timeout", "30", *where)) == "ok"

    nobody = new_id("nobody")
    code, out, err = cli("signal", "go", "--tag", nobody, "--workflow", "Tagged", "--value", '"x"',
                         *where)  # fmt: skip
    assert (code, out.strip()) == (0, f"Signal sent to 0 workflow(s) Tagged tagged {nobody}.")
    # Without the class here, the engine checks the value, once for the whole group.
    code, out, err = cli(
        "signal", "go", "--tag", tag, "--workflow", "Tagged", "--value", "1", *where
    )
    assert code == 1
    assert "does not fit channel 'go'" in err
    code, out, err = cli("cancel", "--tag", nobody, "--workflow", "Tagged", *where)
    assert (code, out.strip()) == (0, f"Cancel sent to 0 workflow(s) Tagged tagged {nobody}.")
    assert f"No running workflow Tagged carries tag '{nobody}'" in err

    outsiders = client.get_workflows("Tagged", other)
    wait_until(lambda: outsiders.ids() == [outsider], "the outsider joins its group")
    out = ok("cancel", "--tag", other, "--workflow", "Tagged", "-o", "json", *where)
    assert json.loads(out) == {"reached": 1, "tag": other, "workflow": "Tagged"}
    canceled = failed("result", outsider, "--timeout", "30", *where)
    assert f"canceled with its group (tag '{other}')" in canceled


def test_retry_a_tag_group_once_the_fault_is_gone(
    where: list[str], client: InfiniticClient, tmp_path: Path
) -> None:
    tag = new_id("retry")
    broken = tmp_path / "broken"
    broken.touch()  # Tagged's check raises RuntimeError (not retried) while it exists
    workflow_id = ok(
        "dispatch", "Tagged", "-a", json.dumps(str(broken)), "--tag", tag, *where
    ).strip()
    failure = failed("result", workflow_id, "--timeout", "30", *where)
    assert f"RuntimeError: {broken} exists" in failure
    broken.unlink()

    def retried() -> bool:  # the group learns the failure through the tag index: poll
        out = ok("retry", "--tag", tag, "--workflow", "Tagged", "-o", "json", *where)
        return bool(json.loads(out)["reached"])

    wait_until(retried, "the group's retry reaches the failed workflow")
    wait_until(lambda: waiting_for_signal(client, workflow_id), "it runs again, to `go`")
    ok("signal", workflow_id, "go", "--value", '"again"', *where)
    assert json.loads(ok("result", workflow_id, "--timeout", "30", *where)) == "again"
