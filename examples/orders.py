"""Orders: signals with a deadline, child workflows, cancel, workflow timeouts and tags, on Kafka.

- `OrderWorkflow` ("Order"): reserves the items, then waits for a payment signal on its
  `payments` channel, or for its payment window to close, whichever comes first. Paid (at
  least the order's amount): charge, ship, return what happened. Not paid in time: release the
  reservation and return that the order was dropped. A client may also cancel it
  (`h.cancel()`: it ends CANCELED), and an order still running a week after its start ends
  FAILED with `WorkflowTimedOut` (`@workflow(timeout=...)`).
- `OrderBatch`: ships paid orders, one `Shipment` child workflow per order, all at once
  (`self.dispatch` + `all_of`); a child that fails (an order without an address) is reported
  in the batch's result rather than failing the batch (`WorkflowFailed` caught).
- Orders are dispatched with a `customer:<id>` tag: `client.get_workflows(OrderWorkflow,
  tag=...)` acts on every order of a customer at once.

The Shop service fakes the world: nothing is charged or shipped, results are made up.

    .venv/bin/python -m examples.orders    # every case above, the engine in this process

Kafka: `--bootstrap` (default `$INFINITIC_KAFKA`, else 127.0.0.1:9092, where `make demo` leaves
its broker); namespace `orders` (`-n`); engine state in `.infinitic/orders/tour`. For the
command line, `examples/orders.toml` configures the same namespace and classes:

    .venv/bin/infinitic-streams worker -c examples/orders.toml     # engine + Shop, until Ctrl-C
    .venv/bin/infinitic-streams describe ID -c examples/orders.toml
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

from infinitic_streams import (
    Channel,
    InfiniticClient,
    RetryPolicy,
    Worker,
    Workflow,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowGroup,
    WorkflowHandle,
    all_of,
    any_of,
    service,
    task_context,
    workflow,
)

# -- what travels: dataclasses are payloads (JSON objects by field name) -------------------------


@dataclass
class Order:
    id: str
    customer: str
    items: list[str]
    amount: float
    address: str = ""


@dataclass
class Payment:
    reference: str
    amount: float


@dataclass
class BatchReport:
    shipped: list[str] = field(default_factory=list)  # tracking numbers, in the batch's order
    failed: list[str] = field(default_factory=list)  # "<child id> <error type>: <message>"


# -- the service -----------------------------------------------------------------------------------


@service("Shop", retry=RetryPolicy(max_attempts=3, initial_delay=0.5, non_retryable=(ValueError,)))
class Shop:
    def reserve(self, order: Order) -> str: ...
    def release(self, reservation: str) -> None: ...
    def charge(self, order: Order, payment: Payment) -> str: ...
    def ship(self, order: Order) -> str: ...


class ShopImpl(Shop):
    def reserve(self, order: Order) -> str:
        return f"reservation-{order.id}"

    def release(self, reservation: str) -> None:
        pass

    def charge(self, order: Order, payment: Payment) -> str:
        # task_id stays the same across retries: the payment provider's idempotency key
        key = task_context().task_id
        return f"charged {payment.amount:.2f} to {payment.reference} (key {key})"

    def ship(self, order: Order) -> str:
        if not order.address:
            raise ValueError(f"order {order.id} has no address")  # not retried: see Shop
        return "track-" + hashlib.sha256(order.id.encode()).hexdigest()[:10]


# -- the workflows ---------------------------------------------------------------------------------


@workflow("Order", timeout=7 * 24 * 3600.0)  # still running after a week: WorkflowTimedOut
class OrderWorkflow(Workflow):
    payments = Channel(Payment)

    def run(self, order: Order, pay_within: float) -> str:
        shop = self.new_service(Shop)
        reservation = shop.reserve(order)
        paid = any_of(
            self.payments.receive(where=lambda p: p.amount >= order.amount),
            self.timer(pay_within),
        ).result()
        if not isinstance(paid, Payment):  # the timer came first
            shop.release(reservation)
            return f"order {order.id} dropped: not paid within {pay_within:g} s"
        receipt = shop.charge(order, paid)
        return f"order {order.id} {receipt}, shipped {shop.ship(order)}"


@workflow("Shipment")
class Shipment(Workflow):
    def run(self, order: Order) -> str:
        return self.new_service(Shop).ship(order)


@workflow("OrderBatch")
class OrderBatch(Workflow):
    def run(self, orders: list[Order]) -> BatchReport:
        shipments = [  # every child starts now; they run side by side
            self.dispatch(self.new_workflow(Shipment, id=f"shipment-{order.id}").run, order)
            for order in orders
        ]
        try:
            return BatchReport(shipped=all_of(*shipments).result())
        except WorkflowFailed:  # all_of fails with the first failure; each child still ends
            report = BatchReport()
            for shipment in shipments:
                try:
                    report.shipped.append(shipment.result())
                except WorkflowFailed as error:
                    report.failed.append(
                        f"{error.workflow_id} {error.type_name}: {error.error_message}"
                    )
            return report


SERVICES = [ShopImpl]
WORKFLOWS = [OrderWorkflow, Shipment, OrderBatch]


# -- running it ------------------------------------------------------------------------------------

PAY_WITHIN_S = 2.0  # the unpaid order's payment window in the tour


def place(client: InfiniticClient, order: Order, pay_within: float) -> WorkflowHandle:
    return client.dispatch(
        OrderWorkflow.run,
        order,
        pay_within,
        id=f"order-{order.id}",
        tags=[f"customer:{order.customer}"],
    )


def wait_for_group(group: WorkflowGroup, count: int) -> None:
    """Wait until the group has `count` workflows (a dispatch is in its group within a second)."""
    deadline = time.monotonic() + 30.0
    while len(group.ids()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group.tag}: not {count} workflows within 30 s")
        time.sleep(0.2)


def wait_for_count(client: InfiniticClient, workflow: type, tag: str, count: int) -> None:
    """Wait until the visibility index counts `count` ended workflows (within a second)."""
    deadline = time.monotonic() + 30.0
    while client.count(workflow, tag=tag) - client.count(workflow, "RUNNING", tag) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"tag {tag}: not {count} ended workflows listed within 30 s")
        time.sleep(0.2)


def tour(client: InfiniticClient, run: str) -> None:
    """Each case of the module, one after the other; `run` keeps this run's ids apart."""
    customer = f"c-{run}"
    print("1. An order paid in time is charged and shipped; one not paid in time is dropped.")
    unpaid = place(client, Order(f"{run}-1", customer, ["pen"], 3.0, "1 Main St"), PAY_WITHIN_S)
    order = Order(f"{run}-2", customer, ["book"], 42.0, "1 Main St")
    h = place(client, order, pay_within=3600.0)
    h.signal("payments", Payment("card-4242", 10.0))  # too little: `where` leaves it aside
    h.signal("payments", Payment("card-4242", 42.0))  # returns once the engine recorded it
    print(h.result(timeout=60))  # order ... charged 42.00 to card-4242 (...), shipped track-...
    print(unpaid.result(timeout=60))  # order ... dropped: not paid within 2 s

    print("2. An order canceled by a client ends CANCELED.")
    h = place(client, Order(f"{run}-3", customer, ["lamp"], 30.0, "1 Main St"), 3600.0)
    print(h.cancel())  # True: canceled now (False: it had ended already)
    try:
        h.result(timeout=60)
    except WorkflowCanceled as error:
        print(error)  # workflow order-<run>-3 was canceled: canceled by a client
    print(h.describe().status)  # CANCELED

    print("3. Every running order of a customer, canceled at once through their tag.")
    for n in (4, 5):
        place(client, Order(f"{run}-{n}", f"{customer}-b", ["mug"], 9.0, "2 Side St"), 3600.0)
    group = client.get_workflows(OrderWorkflow, tag=f"customer:{customer}-b")
    wait_for_group(group, 2)
    print(group.ids())  # every Order workflow with that tag, whatever its status
    print(group.cancel())  # 2: how many running ones it reached

    print("4. A batch ships each order in a child workflow; a failing child is reported.")
    orders = [
        Order(f"{run}-6", customer, ["book"], 42.0, "1 Main St"),
        Order(f"{run}-7", customer, ["pen"], 3.0, ""),  # no address: its shipment fails
        Order(f"{run}-8", customer, ["lamp"], 30.0, "3 High St"),
    ]
    batch = client.dispatch(OrderBatch.run, orders, id=f"batch-{run}")
    report = batch.result(timeout=60)
    print(report.shipped)  # ['track-...', 'track-...']
    print(report.failed)  # ['shipment-<run>-7 TaskFailed: task Shop.ship (...) failed ...']
    for child_id, name, status in batch.describe().children:
        print(child_id, name, status)

    print("5. The customer's orders, most recently updated first, and how each one ended.")
    tag = f"customer:{customer}"
    wait_for_count(client, OrderWorkflow, tag, 3)
    for info in client.list(OrderWorkflow, tag=tag, limit=10):
        print(info.id, info.status, info.updated_at, info.error)  # newest first
    print(client.count_by_status(OrderWorkflow, tag=tag))  # {'RUNNING': 0, 'COMPLETED': 2, ...}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("INFINITIC_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("-n", "--namespace", default="orders")
    parser.add_argument("--state-dir", default=".infinitic/orders/tour")
    args = parser.parse_args(argv)
    kafka = {"bootstrap.servers": args.bootstrap}
    worker = Worker(
        kafka,
        args.namespace,
        services=[cls() for cls in SERVICES],
        workflows=WORKFLOWS,
        state_dir=args.state_dir,
    ).start()
    try:
        with InfiniticClient(kafka, args.namespace) as client:
            tour(client, uuid.uuid4().hex[:6])
    finally:
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
