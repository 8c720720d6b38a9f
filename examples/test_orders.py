"""Tests of the orders workflows (examples/orders.py) on the test kit: the real engine in
memory, no Kafka, time that moves only when told (or, with auto_skip, when nothing else can
run). A day's payment window or a week's workflow timeout takes milliseconds.

    .venv/bin/pytest examples/test_orders.py
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from examples.orders import (
    SERVICES,
    WORKFLOWS,
    Order,
    OrderBatch,
    OrderWorkflow,
    Payment,
)
from infinitic_streams import WorkflowStatus, WorkflowTimedOut
from infinitic_streams.testing import WorkflowEnvironment

DAY = 24 * 3600.0
ORDER = Order("7", "ada", ["book"], 42.0, "1 Main St")


@pytest.fixture
def env():
    with WorkflowEnvironment([cls() for cls in SERVICES], WORKFLOWS) as environment:
        yield environment


def test_a_paid_order_is_charged_and_shipped(env: WorkflowEnvironment) -> None:
    order = env.client.dispatch(OrderWorkflow.run, ORDER, DAY)
    order.signal("payments", Payment("card-4242", 10.0))  # too little: left aside
    env.skip(timedelta(hours=23))  # still within the day
    order.signal("payments", Payment("card-4242", 42.0))
    assert order.result().startswith("order 7 charged 42.00 to card-4242")


def test_an_order_not_paid_within_a_day_is_dropped(env: WorkflowEnvironment) -> None:
    order = env.client.dispatch(OrderWorkflow.run, ORDER, DAY)
    env.skip(timedelta(days=1))
    assert order.result() == "order 7 dropped: not paid within 86400 s"


def test_an_order_still_running_after_a_week_times_out(workflow_environment) -> None:
    # the package's pytest fixture: environments made with it are closed after the test
    env = workflow_environment([cls() for cls in SERVICES], WORKFLOWS, auto_skip=True)
    order = env.client.dispatch(OrderWorkflow.run, ORDER, 30 * DAY)
    with pytest.raises(WorkflowTimedOut):
        order.result()  # auto_skip: time jumps to the week's end, the first timer due
    assert order.describe().status == WorkflowStatus.FAILED


def test_a_batch_reports_the_order_it_could_not_ship(env: WorkflowEnvironment) -> None:
    orders = [ORDER, Order("8", "bob", ["pen"], 3.0)]  # no address: Shipment fails
    report = env.client.dispatch(OrderBatch.run, orders).result()
    assert len(report.shipped) == 1
    [failed] = report.failed
    assert failed.startswith("shipment-8 TaskFailed: task Shop.ship")
    assert failed.endswith("ValueError: order 8 has no address")
