"""Subscriptions: versioning (`self.patched`) and continue-as-new, on Kafka.

- `Subscription` bills an account once per period until it has billed `months` periods or a
  cancel request comes (a signal on `cancel_requests`). Each period is a run of its own: the
  run charges, waits, then `self.continue_as_new(...)` starts the next run with the receipts
  so far, so its history stays a few events long however long it lives.
- A deploy changes the code: receipts are now mailed too, behind `self.patched(...)`. The
  tour starts a subscription with the old code (`SubscriptionBefore`), restarts the engine
  with the new code, and starts another: the old one finishes its running period on the old
  path (its history holds no patch marker), and its next runs, new runs, take the new one.

    .venv/bin/python -m examples.versioning    # the engine in this process, restarted once

Kafka: `--bootstrap` (default `$INFINITIC_KAFKA`, else 127.0.0.1:9092); namespace
`subscriptions` (`-n`); engine state in `.infinitic/subscriptions/tour`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

from infinitic_streams import Channel, InfiniticClient, Worker, Workflow, any_of, service, workflow


@service("Billing")
class Billing:
    def charge(self, account: str, period: int) -> str: ...
    def mail(self, account: str, receipt: str) -> str: ...


class BillingImpl(Billing):
    def charge(self, account: str, period: int) -> str:
        return f"charged {account} for period {period}"

    def mail(self, account: str, receipt: str) -> str:
        return f"{receipt} (mailed)"


@workflow("Subscription")
class SubscriptionBefore(Workflow):
    """The code before the deploy."""

    cancel_requests = Channel(str)

    def run(self, account: str, period: float, months: int, receipts: list[str]) -> list[str]:
        billing = self.new_service(Billing)
        receipt = billing.charge(account, len(receipts) + 1)
        receipts = [*receipts, receipt]
        canceled = any_of(self.cancel_requests.receive(), self.timer(period)).result()
        if len(receipts) == months or isinstance(canceled, str):
            return receipts
        self.continue_as_new(account, period, months, receipts)


@workflow("Subscription")
class Subscription(Workflow):
    cancel_requests = Channel(str)

    def run(self, account: str, period: float, months: int, receipts: list[str]) -> list[str]:
        billing = self.new_service(Billing)
        receipt = billing.charge(account, len(receipts) + 1)
        if self.patched("mail-receipts"):  # True from this deploy on, False for older runs
            receipt = billing.mail(account, receipt)
        receipts = [*receipts, receipt]
        canceled = any_of(self.cancel_requests.receive(), self.timer(period)).result()
        if len(receipts) == months or isinstance(canceled, str):
            return receipts
        self.continue_as_new(account, period, months, receipts)  # a new run, a fresh history


def engine(kafka: dict[str, str], namespace: str, state_dir: str, workflow_class: type) -> Worker:
    return Worker(
        kafka,
        namespace,
        services=[BillingImpl()],
        workflows=[workflow_class],
        state_dir=state_dir,
    ).start()


def tour(kafka: dict[str, str], namespace: str, state_dir: str, suffix: str) -> None:
    worker = engine(kafka, namespace, state_dir, SubscriptionBefore)
    with InfiniticClient(kafka, namespace) as client:
        try:
            old = client.dispatch(Subscription.run, "acme", 1.0, 3, [], id=f"acme-{suffix}")
            while not any("timer" in p for p in old.describe().pending):
                time.sleep(0.1)  # its first period is charged, with the old code
        finally:
            worker.stop()
        worker = engine(kafka, namespace, state_dir, Subscription)  # the deploy
        try:
            new = client.dispatch(Subscription.run, "zeta", 0.5, 12, [], id=f"zeta-{suffix}")
            print(old.result(timeout=60))
            info = old.describe()
            print(f"{info.id}: run {info.run}, patches of its last run: {info.patches}")
            new.signal("cancel_requests", "moving out")  # ends it within its current period
            receipts = new.result(timeout=60)
            print(f"{new.id}: {len(receipts)} periods billed, run {new.describe().run}")
            print(receipts[-1])
        finally:
            worker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("INFINITIC_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("-n", "--namespace", default="subscriptions")
    parser.add_argument("--state-dir", default=".infinitic/subscriptions/tour")
    args = parser.parse_args(argv)
    kafka = {"bootstrap.servers": args.bootstrap}
    tour(kafka, args.namespace, args.state_dir, uuid.uuid4().hex[:6])
    return 0


if __name__ == "__main__":
    sys.exit(main())
