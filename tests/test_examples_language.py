"""examples/orders.py on the real broker: the order workflow (paid, not paid in time, canceled,
past its workflow timeout), a customer's tag group, the batch of child workflows with a failing
one, and the module run as the README says (`python -m examples.orders`). The README's
snippets of those features are excerpts of the example, so they run as the example does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples import orders
from examples.orders import (
    BatchReport,
    Order,
    OrderBatch,
    OrderWorkflow,
    Payment,
    Shipment,
    ShopImpl,
    place,
)
from infinitic_streams import (
    InfiniticClient,
    InfiniticError,
    Worker,
    WorkflowCanceled,
    WorkflowStatus,
    WorkflowTimedOut,
    workflow,
)

ROOT = Path(__file__).resolve().parent.parent
RESULT_TIMEOUT_S = 60.0
SHOP = ShopImpl()


@workflow("QuickOrder", timeout=1.5)
class QuickOrder(OrderWorkflow):
    """The example's order with a workflow timeout of 1.5 s instead of a week."""

    def run(self, order: Order, pay_within: float) -> str:
        return super().run(order, pay_within)


@pytest.fixture(scope="module")
def module_namespace() -> str:
    return f"t-examples-language-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, module_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    started = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        module_namespace,
        services=[cls() for cls in orders.SERVICES],
        workflows=[*orders.WORKFLOWS, QuickOrder],
        state_dir=tmp_path_factory.mktemp("orders-state"),
        stream={"session_timeout_ms": 6000},
    ).start()
    yield started
    started.stop()


@pytest.fixture
def client(
    kafka_bootstrap: str, module_namespace: str, worker: Worker
) -> Iterator[InfiniticClient]:
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, module_namespace) as opened:
        yield opened


def new_order(amount: float = 42.0, address: str = "1 Main St", customer: str = "c-1") -> Order:
    return Order(f"o-{uuid.uuid4().hex[:8]}", customer, ["book"], amount, address)


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return found


def tasks(handle: Any) -> list[str]:
    return [e["method"] for e in handle.history() if e["event"] == "TaskScheduled"]


def test_a_paid_order_is_charged_and_shipped(client: InfiniticClient) -> None:
    order = new_order()
    h = place(client, order, 3600.0)
    h.signal("payments", Payment("card-4242", 10.0))  # too little: left aside by `where`
    h.signal("payments", Payment("card-4242", 42.0))
    result = h.result(timeout=RESULT_TIMEOUT_S)
    assert re.fullmatch(
        rf"order {order.id} charged 42\.00 to card-4242 \(key order-{order.id}:\d+\), "
        rf"shipped {SHOP.ship(order)}",
        result,
    ), result
    assert tasks(h) == ["reserve", "charge", "ship"]
    assert [e["event"] for e in h.history()].count("SignalReceived") == 2  # both recorded


def test_an_order_not_paid_in_time_is_dropped(client: InfiniticClient) -> None:
    order = new_order()
    h = place(client, order, 1.0)
    assert h.result(timeout=RESULT_TIMEOUT_S) == f"order {order.id} dropped: not paid within 1 s"
    assert tasks(h) == ["reserve", "release"]
    with pytest.raises(InfiniticError, match="has ended"):
        h.signal("payments", Payment("card-4242", 42.0))  # too late: refused, not lost


def test_a_canceled_order_ends_canceled(client: InfiniticClient) -> None:
    h = place(client, new_order(), 3600.0)
    assert h.cancel() is True
    with pytest.raises(WorkflowCanceled, match="canceled by a client"):
        h.result(timeout=RESULT_TIMEOUT_S)
    info = h.describe()
    assert (info.status, info.pending) == (WorkflowStatus.CANCELED, [])
    assert h.cancel() is False  # it had ended: nothing changes


def test_an_order_past_its_workflow_timeout_fails_timed_out(client: InfiniticClient) -> None:
    order = new_order()
    h = client.dispatch(QuickOrder.run, order, 3600.0)
    with pytest.raises(WorkflowTimedOut, match=r"still running 1\.5 s after its start"):
        h.result(timeout=RESULT_TIMEOUT_S)
    assert h.describe().status == WorkflowStatus.FAILED
    assert tasks(h) == ["reserve"]


def test_a_customer_tag_group_is_paid_then_canceled(client: InfiniticClient) -> None:
    customer = f"c-{uuid.uuid4().hex[:6]}"
    mine = [place(client, new_order(9.0, customer=customer), 3600.0) for _ in range(3)]
    other = place(client, new_order(9.0, customer=f"{customer}-other"), 3600.0)
    group = client.get_workflows(OrderWorkflow, tag=f"customer:{customer}")
    wait_until(lambda: len(group.ids()) == 3, timeout=10.0)
    assert sorted(group.ids()) == sorted(h.id for h in mine)
    assert mine[0].cancel() is True
    assert group.signal("payments", Payment("voucher-1", 9.0)) == 2  # the running ones
    for h in mine[1:]:
        assert "shipped track-" in h.result(timeout=RESULT_TIMEOUT_S)
    assert group.cancel() == 0  # none runs any more
    assert other.describe().status == WorkflowStatus.RUNNING  # not in the group
    others = client.get_workflows(OrderWorkflow, tag=f"customer:{customer}-other")
    wait_until(lambda: others.ids() == [other.id], timeout=10.0)
    assert others.cancel() == 1
    with pytest.raises(WorkflowCanceled):
        other.result(timeout=RESULT_TIMEOUT_S)


def test_a_batch_returns_its_shipments_and_reports_the_failed_child(
    client: InfiniticClient,
) -> None:
    batch_orders = [new_order(), new_order(address=""), new_order(address="3 High St")]
    h = client.dispatch(OrderBatch.run, batch_orders)
    report = h.result(timeout=RESULT_TIMEOUT_S)
    assert isinstance(report, BatchReport)
    assert report.shipped == [SHOP.ship(batch_orders[0]), SHOP.ship(batch_orders[2])]
    failed = batch_orders[1].id
    assert report.failed == [
        f"shipment-{failed} TaskFailed: task Shop.ship (shipment-{failed}:1) failed after "
        f"1 attempt(s): ValueError: order {failed} has no address"
    ]
    children = h.describe().children
    assert children == [
        (f"shipment-{o.id}", "Shipment", status)
        for o, status in zip(
            batch_orders,
            [WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.COMPLETED],
            strict=True,
        )
    ]
    child = client.get_workflow(Shipment, f"shipment-{batch_orders[0].id}")
    assert child.result(timeout=RESULT_TIMEOUT_S) == SHOP.ship(batch_orders[0])


def test_the_module_runs_as_the_readme_says(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "examples.orders", "--bootstrap", kafka_bootstrap]
    command += ["-n", namespace, "--state-dir", str(tmp_path / "state")]
    env = {k: v for k, v in os.environ.items() if k != "INFINITIC_KAFKA"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert re.search(r"charged 42\.00 to card-4242 .*, shipped track-", done.stdout)
    assert re.search(r"dropped: not paid within 2 s", done.stdout)
    assert "True" in lines and "CANCELED" in lines and "2" in lines
    assert re.search(r"was canceled: canceled by a client", done.stdout)
    assert re.search(r"Shipment FAILED", done.stdout)
    assert len(re.findall(r"Shipment COMPLETED", done.stdout)) == 2
    assert "'COMPLETED': 2" in done.stdout and "'CANCELED': 1" in done.stdout
    listed = re.findall(r"^order-\S+ (COMPLETED|CANCELED) ", done.stdout, re.M)
    assert sorted(listed) == ["CANCELED", "COMPLETED", "COMPLETED"]


README_SECTIONS = (
    "### Signals",
    "### Child workflows",
    "### Cancel and workflow timeouts",
    "### Tags and groups",
    "### Finding workflows: list, count and the events topic",
)


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = []
    for heading in README_SECTIONS:
        start = text.index(f"\n{heading}")
        end = text.index("\n#", start + 1)
        blocks += re.findall(r"```python\n(.*?)```", text[start:end], re.S)
    return blocks


def test_the_readme_snippets_of_these_features_are_the_example_s_code() -> None:
    source = (ROOT / "examples" / "orders.py").read_text()
    blocks = readme_python_blocks()
    assert len(blocks) >= len(README_SECTIONS)
    for block in blocks:
        for part in block.split("\n\n"):  # each paragraph of a snippet, as the example has it
            lines = [line for line in part.splitlines() if line.strip() != "..."]
            excerpt = textwrap.dedent("\n".join(lines)).strip("\n")
            if excerpt:
                indented = [textwrap.indent(excerpt, " " * n) for n in (0, 4, 8)]
                assert any(e in source for e in indented), f"not in examples/orders.py:\n{excerpt}"
