"""A worker's HTTP endpoint on the real broker: /healthz, /readyz once its partitions are
restored, and /metrics counting exactly a known set of workflows, tasks and signals."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from infinitic_streams import InfiniticClient, InfiniticError, Worker, WorkflowFailed

from .apps.workflows import Compensate, Fixable, Flaky, StepsImpl, Sum

RESULT_TIMEOUT_S = 60.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(base: str) -> Samples:
    """Every sample of the scrape, by (name, sorted labels without namespace)."""
    found: Samples = {}
    for family in text_string_to_metric_families(get(f"{base}/metrics")[1]):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "namespace"))
            found[(sample.name, labels)] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.2)
    return result


def test_metrics_count_a_known_set_of_workflows_exactly(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    worker = Worker(
        kafka,
        namespace,
        services=[StepsImpl()],
        workflows=[Sum, Flaky, Compensate, Fixable],
        state_dir=tmp_path / "state",
        concurrency=4,
        registry=CollectorRegistry(),
        metrics_port=0,
        metrics_host="127.0.0.1",
    ).start()
    try:
        endpoint = wait_until(lambda: worker.endpoint, what="the endpoint")
        host, port = endpoint.address
        base = f"http://{host}:{port}"
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/nowhere")[0] == 404
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, what="ready")
        broken = tmp_path / "broken"
        broken.touch()
        with InfiniticClient(kafka, namespace) as client:
            sums = [client.dispatch(Sum.run, 2) for _ in range(3)]  # 2 tasks each
            flaky = client.dispatch(Flaky.run, 2)  # attempt 1 fails, 2 succeeds
            compensate = client.dispatch(Compensate.run, 5)  # 3 failed attempts, then undo
            fixable = client.dispatch(Fixable.run, str(broken))  # 3 failed attempts: FAILED
            for handle in (*sums, flaky, compensate):
                handle.result(timeout=RESULT_TIMEOUT_S)
            with pytest.raises(WorkflowFailed):
                fixable.result(timeout=RESULT_TIMEOUT_S)
            with pytest.raises(InfiniticError, match="has ended"):
                client.get_workflow(None, sums[0].id).signal("anything", 1)  # by the engine

        expected_workflows = {"Sum": 3, "Flaky": 1, "Compensate": 1, "Fixable": 1}
        ended = {
            ("Sum", "COMPLETED"): 3,
            ("Flaky", "COMPLETED"): 1,
            ("Compensate", "COMPLETED"): 1,
            ("Fixable", "FAILED"): 1,
        }
        tasks = {
            ("add", "completed"): 6,
            ("fail_until", "retried"): 1,
            ("fail_until", "completed"): 1,
            ("always_fails", "retried"): 2,
            ("always_fails", "failed"): 1,
            ("undo", "completed"): 1,
            ("fails_while_file_exists", "retried"): 2,
            ("fails_while_file_exists", "failed"): 1,
        }

        def counted() -> Samples | None:  # counters move once the engine's commit returns
            found = samples(base)
            refused = value(found, "infinitic_signals_total", workflow="Sum", outcome="refused")
            return found if refused == 1 else None

        found = wait_until(counted, what="the signal counted")
        for name, count in expected_workflows.items():
            assert value(found, "infinitic_workflows_started_total", workflow=name) == count
        for (name, status), count in ended.items():
            labels = {"workflow": name, "status": status}
            assert value(found, "infinitic_workflows_ended_total", **labels) == count
            assert value(found, "infinitic_workflow_duration_seconds_count", **labels) == count
        for (method, outcome), count in tasks.items():
            labels = {"service": "Steps", "method": method, "outcome": outcome}
            assert value(found, "infinitic_tasks_total", **labels) == count, (method, outcome)
        assert sum(v for (n, _), v in found.items() if n == "infinitic_tasks_total") == 15

        def durations(outcome: str) -> float:
            return sum(
                v
                for (n, labels), v in found.items()
                if n == "infinitic_task_duration_seconds_count" and ("outcome", outcome) in labels
            )

        assert (durations("succeeded"), durations("failed")) == (8, 7)
        queued = [v for (n, _), v in found.items() if n == "infinitic_task_queue_seconds_count"]
        assert sum(queued) == 15
        assert value(found, "infinitic_tasks_in_flight", service="Steps") == 0
        assert value(found, "infinitic_task_concurrency", service="Steps") == 4
        assert value(found, "infinitic_partitions_assigned", processor="engine") == 8
        assert value(found, "infinitic_partitions_restoring", processor="engine") == 0
        assert value(found, "infinitic_partitions_assigned", processor="visibility") == 8
        steps = value(found, "infinitic_cache_hits_total") + value(found, "infinitic_replays_total")
        assert steps > 0
        letters = {
            labels: v
            for (n, labels), v in found.items()
            if n == "infinitic_dead_letters_total" and v > 0
        }
        assert letters == {(("processor", "engine"), ("reason", "refused")): 1}  # the signal
    finally:
        worker.stop()
    assert worker.endpoint is not None
    with pytest.raises(OSError):  # the endpoint stops with the worker
        get(f"{base}/healthz")
