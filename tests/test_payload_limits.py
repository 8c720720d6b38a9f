"""Payloads over `max_payload_bytes` on the real broker: refused where they are made, with an
error naming the size and the limit; nothing stuck, and the other workflows of the partition
(one partition here) keep going. Payloads under the limit travel whole, even when escaping
doubles them in the engine's stored history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitic_streams import (
    InfiniticClient,
    TaskFailed,
    Worker,
    Workflow,
    WorkflowFailed,
    service,
    workflow,
)
from infinitic_streams.errors import PayloadTooLarge
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES

FIVE_MB = 5_000_000


@service("Big")
class Big:
    def echo(self, text: str) -> str: ...
    def make(self, size: int) -> str: ...


class BigImpl(Big):
    def echo(self, text: str) -> str:
        return text

    def make(self, size: int) -> str:
        return "x" * size


@workflow("Sizes")
class Sizes(Workflow):
    def send_big(self, size: int) -> str:
        try:
            self.new_service(Big).echo("x" * size)
        except PayloadTooLarge as error:
            return f"refused {error.size} > {error.limit}"
        return "sent"

    def get_big(self, size: int) -> str:
        try:
            return self.new_service(Big).make(size)
        except TaskFailed as error:
            return f"{error.type_name} after {error.attempts} attempt(s)"

    def return_big(self, size: int) -> str:
        return self.new_service(Big).make(10) * (size // 10)

    def quotes(self, count: int) -> int:
        return len(self.new_service(Big).echo('"' * count))

    def length(self, text: str) -> int:
        return len(text)

    def small(self, n: int) -> int:
        return len(self.new_service(Big).echo("y" * n))


@pytest.fixture
def client(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[InfiniticClient]:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    worker = Worker(
        kafka,
        namespace,
        services=[BigImpl()],
        workflows=[Sizes],
        state_dir=tmp_path / "state",
        partitions=1,  # every workflow of the test on the same partition
    ).start()
    try:
        with InfiniticClient(kafka, namespace, partitions=1) as opened:
            yield opened
    finally:
        worker.stop()


def test_a_5_mb_task_argument_is_refused_in_workflow_code(client: InfiniticClient) -> None:
    big = client.dispatch(Sizes.send_big, FIVE_MB)
    after = client.dispatch(Sizes.small, 10)
    expected = f"refused {FIVE_MB + 2} > {DEFAULT_MAX_PAYLOAD_BYTES}"  # JSON adds the quotes
    assert big.result(timeout=60) == expected
    assert after.result(timeout=60) == 10
    [refused] = [e for e in big.history() if e["event"] == "CallRefused"]
    assert refused["size"] == FIVE_MB + 2


def test_a_5_mb_task_result_fails_the_task_without_retries(client: InfiniticClient) -> None:
    big = client.dispatch(Sizes.get_big, FIVE_MB)
    after = client.dispatch(Sizes.small, 10)
    assert big.result(timeout=60) == "PayloadTooLarge after 1 attempt(s)"
    assert after.result(timeout=60) == 10


def test_a_5_mb_workflow_result_fails_the_workflow(client: InfiniticClient) -> None:
    big = client.dispatch(Sizes.return_big, FIVE_MB)
    after = client.dispatch(Sizes.small, 10)
    with pytest.raises(WorkflowFailed) as failed:
        big.result(timeout=60)
    assert failed.value.type_name == "PayloadTooLarge"
    assert str(DEFAULT_MAX_PAYLOAD_BYTES) in failed.value.error_message
    assert after.result(timeout=60) == 10


def test_a_5_mb_dispatch_is_refused_by_the_client(client: InfiniticClient) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        client.dispatch(Sizes.length, "x" * FIVE_MB)
    assert (refused.value.size, refused.value.limit) == (FIVE_MB + 2, DEFAULT_MAX_PAYLOAD_BYTES)
    assert client.dispatch(Sizes.small, 10).result(timeout=60) == 10


def test_a_payload_just_under_the_limit_travels_whole(client: InfiniticClient) -> None:
    # 500,000 quotes encode to 1,000,002 bytes (each escaped once), under the 1 MiB limit;
    # stored inside the history's JSON they are escaped again, to about 2 MB.
    assert client.dispatch(Sizes.quotes, 500_000).result(timeout=60) == 500_000
