"""The test kit (`infinitic_streams.testing`): the real engine and visibility index on the
in-memory runtime, time of its own, the client's API; and the workflow-language behaviours
that do not need Kafka to be proven (the Kafka tests keep those that do: partitions, crashes,
a real service worker)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from examples.versioning import Billing, BillingImpl, Subscription, SubscriptionBefore
from infinitic_streams import (
    Channel,
    InfiniticError,
    NonDeterministicWorkflow,
    RetryPolicy,
    TaskFailed,
    Workflow,
    WorkflowCanceled,
    WorkflowNotFound,
    WorkflowStatus,
    WorkflowTimedOut,
    any_of,
    service,
    task_context,
    workflow,
)
from infinitic_streams.testing import WorkflowEnvironment

from .apps.language import (
    SERVICES,
    WORKFLOWS,
    Approval,
    Child,
    Deadline,
    Hurried,
    Parent,
    Sender,
    Stubborn,
    Tagged,
)

START = datetime(2030, 1, 1, tzinfo=UTC)


@service("Mailer", retry=RetryPolicy(max_attempts=4, initial_delay=60.0, backoff=2.0, jitter=0))
class Mailer:
    def send(self, to: str, text: str) -> str: ...

    async def check(self, to: str) -> bool: ...


class MailerImpl(Mailer):
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts: list[int] = []

    def send(self, to: str, text: str) -> str:
        self.attempts.append(task_context().attempt)
        if len(self.attempts) <= self.failures:
            raise ConnectionError("smtp down")
        return f"{text} to {to}"

    async def check(self, to: str) -> bool:
        return "@" in to


@workflow("Reminder")
class Reminder(Workflow):
    answers = Channel(str)

    def run(self, to: str) -> str:
        self.sleep(timedelta(days=1))
        answer = any_of(self.answers.receive(), self.timer(3600.0)).result()
        mailer = self.new_service(Mailer)
        if not mailer.check(to):
            return "no address"
        sent = mailer.send(to, answer if isinstance(answer, str) else "no answer")
        return f"{sent} at {self.now().isoformat()}"


@workflow("Reminder")
class ChangedReminder(Workflow):
    """Reminder after a change that is not deterministic: a task before the day's sleep."""

    answers = Channel(str)

    def run(self, to: str) -> str:
        self.new_service(Mailer).send(to, "hello")
        self.sleep(timedelta(days=1))
        return "changed"


def env_of(**options: Any) -> WorkflowEnvironment:
    services = options.pop("services", [MailerImpl()])
    return WorkflowEnvironment(services, [Reminder], start=START, **options)


def test_a_day_timer_a_signal_and_retries_with_backoff_run_in_no_time() -> None:
    mailer = MailerImpl(failures=2)
    with WorkflowEnvironment([mailer], [Reminder], auto_skip=True, start=START) as env:
        handle = env.client.dispatch(Reminder.run, "me@example.com")
        assert handle.describe().pending == ["timer due at 2030-01-02T00:00:00.000+00:00 (step 1)"]
        env.skip(timedelta(days=1))  # the day's sleep is over; now 1 h for an answer
        handle.signal("answers", "yes")
        # two failed attempts, then 60 s and min(120, max_delay 60) s of backoff
        assert handle.result() == "yes to me@example.com at 2030-01-02T00:02:00+00:00"
        assert mailer.attempts == [1, 2, 3]
        assert env.now() == START + timedelta(days=1, minutes=2)


def test_time_stands_still_without_skip_and_timers_fire_at_their_own_time() -> None:
    with env_of() as env:
        handle = env.client.dispatch(Reminder.run, "me@example.com")
        with pytest.raises(TimeoutError, match=r"RUNNING, waiting for \['timer due .*env.skip"):
            handle.result()
        env.skip(timedelta(days=3))  # both timers fall due on the way, each at its time
        assert handle.result() == "no answer to me@example.com at 2030-01-02T01:00:00+00:00"
        assert env.now() == START + timedelta(days=3)
        with pytest.raises(ValueError, match="only moves forward"):
            env.skip(-1)


def test_the_client_api_on_the_environment() -> None:
    with env_of(auto_skip=True) as env:
        client = env.client
        first = client.dispatch(Reminder.run, "a@example.com", id="r-1", tags=["team:x"])
        assert client.dispatch(Reminder.run, "other", id="r-1").id == "r-1"  # idempotent
        second = client.dispatch(Reminder.run, "nobody", tags=["team:x"])
        assert sorted(client.get_workflows(Reminder, tag="team:x").ids()) == sorted(
            ["r-1", second.id]
        )
        assert client.count(status="RUNNING") == 2
        assert client.get_workflows(Reminder, tag="team:x").signal("answers", "ok") == 2
        assert first.result() == "ok to a@example.com at 2030-01-02T00:00:00+00:00"
        assert second.result() == "no address"
        assert client.count(workflow=Reminder, status=WorkflowStatus.COMPLETED) == 2
        assert [i.id for i in client.list(tag="team:x")] == [second.id, "r-1"]
        info = client.get_workflow(Reminder, "r-1").describe()
        assert (info.status, info.tags, info.args) == ("COMPLETED", ("team:x",), ("a@example.com",))
        names = [e["event"] for e in first.history()]
        assert names[0] == "Started" and names[-1] == "Ended" and "SignalReceived" in names
        assert {e["type"] for e in env.events} >= {
            "infinitic.workflow.started",
            "infinitic.timer.fired",
            "infinitic.signal.received",
            "infinitic.task.completed",
            "infinitic.workflow.completed",
        }
        with pytest.raises(WorkflowNotFound):
            client.get_workflow(Reminder, "nobody").describe()


def test_list_merges_statuses_newest_updated_first_and_pages_through_them() -> None:
    with env_of() as env:
        client = env.client
        oldest = client.dispatch(Reminder.run, "a@example.com", id="running-old")
        env.skip(timedelta(hours=1))
        canceled = client.dispatch(Reminder.run, "b@example.com", id="canceled")
        env.skip(timedelta(hours=1))
        canceled.cancel()
        env.skip(timedelta(hours=1))
        newest = client.dispatch(Reminder.run, "c@example.com", id="running-new")
        listed = client.list()
        assert [(i.id, i.status) for i in listed] == [
            (newest.id, "RUNNING"),
            (canceled.id, "CANCELED"),
            (oldest.id, "RUNNING"),
        ]
        pages, after = [], None
        while page := client.list(limit=1, after=after):
            pages += [i.id for i in page]
            after = page[-1].cursor
        assert pages == [i.id for i in listed]
        assert [i.id for i in client.list(status="RUNNING", limit=1)] == [newest.id]


def test_signals_sent_before_receive_where_and_limit() -> None:
    with WorkflowEnvironment(workflows=[Approval]) as env:
        handle = env.client.dispatch(Approval.run)
        for value in ["yes", "maybe", "no", "x"]:
            handle.signal("decisions", value)
        assert handle.result() == ["yes", "no", "maybe", "x"]


@pytest.mark.parametrize(("signal", "expected"), [(7, "signal 7"), (None, "timer")])
def test_any_of_receive_and_timer_is_won_by_each_side(signal: int | None, expected: str) -> None:
    with WorkflowEnvironment(workflows=[Deadline], auto_skip=True) as env:
        handle = env.client.dispatch(Deadline.run, 60.0)
        if signal is not None:
            handle.signal("answers", signal)
        assert handle.result() == expected


def test_refused_signals_raise_and_are_dead_lettered() -> None:
    with WorkflowEnvironment(workflows=[Deadline, Sender]) as env:
        with pytest.raises(WorkflowNotFound):
            env.client.get_workflow(Deadline, "nobody").signal("answers", 1)
        untyped = env.client.get_workflow(None, env.client.dispatch(Deadline.run, 60.0).id)
        with pytest.raises(InfiniticError, match=r"no channel 'questions'.*\['answers'\]"):
            untyped.signal("questions", 1)
        reasons = [d.reason for d in env.dead_letters]
        assert any("no workflow with id nobody" in r for r in reasons)
        assert any("no channel 'questions'" in r for r in reasons)
        sender = env.client.dispatch(Sender.run, untyped.id, 5)
        assert (sender.result(), untyped.result()) == ("sent", "signal 5")


def test_children_return_or_fail_and_are_described() -> None:
    with WorkflowEnvironment([cls() for cls in SERVICES], WORKFLOWS) as env:
        ids = [f"child-{n}" for n in range(5)]
        handle = env.client.dispatch(Parent.run, ids, [1, 2, 3, 4, -1])
        assert handle.result() == [2, 4, 6, 8, "child-4 ValueError: -1 is negative"]
        children = handle.describe().children
        assert [(c[0], c[2]) for c in children] == [(i, "COMPLETED") for i in ids[:4]] + [
            ("child-4", "FAILED")
        ]
        assert env.client.get_workflow(Child, "child-0").result() == 2


def test_cancel_during_a_retry_delay_and_a_workflow_timeout() -> None:
    with WorkflowEnvironment([cls() for cls in SERVICES], WORKFLOWS) as env:
        stubborn = env.client.dispatch(Stubborn.run)
        assert "AttemptFailed" in [e["event"] for e in stubborn.history()]
        assert stubborn.cancel() is True
        with pytest.raises(WorkflowCanceled, match="canceled by a client"):
            stubborn.result()
        assert stubborn.cancel() is False
        hurried = env.client.dispatch(Hurried.run)
        env.skip(2.0)
        with pytest.raises(WorkflowTimedOut, match="still running 2 s after its start"):
            hurried.result()


def test_a_failed_workflow_retried_once_the_fault_is_gone(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    with WorkflowEnvironment([cls() for cls in SERVICES], WORKFLOWS) as env:
        handle = env.client.dispatch(Tagged.run, str(broken))
        with pytest.raises(Exception, match="exists"):
            handle.result()
        broken.unlink()
        handle.retry()
        handle.signal("go", "fixed")
        assert handle.result() == "fixed"


def test_replay_accepts_the_same_code_and_names_a_non_deterministic_change() -> None:
    with env_of(auto_skip=True) as env:
        handle = env.client.dispatch(Reminder.run, "me@example.com")
        handle.result()
        history = handle.history()
    env.replay(history, Reminder, handle.id)
    with pytest.raises(NonDeterministicWorkflow, match=r"timer.*task Mailer\.send"):
        env.replay(history, ChangedReminder, handle.id)


def test_a_task_failure_reaches_the_workflow_and_no_thread_is_left_behind(
    workflow_environment: Any,
) -> None:
    threads = threading.active_count()
    env = workflow_environment([MailerImpl(failures=9)], [Reminder], auto_skip=True)
    handle = env.client.dispatch(Reminder.run, "me@example.com")
    with pytest.raises(Exception, match="ConnectionError"):  # 4 attempts, then it gives up
        handle.result()
    assert handle.describe().status == WorkflowStatus.FAILED
    assert threading.active_count() == threads
    assert issubclass(TaskFailed, InfiniticError)


def test_a_task_of_a_service_the_environment_lacks_waits_and_says_so() -> None:
    with WorkflowEnvironment([], [Reminder], auto_skip=True) as env:
        handle = env.client.dispatch(Reminder.run, "me@example.com")
        with pytest.raises(TimeoutError, match=r"services this environment lacks.*Mailer"):
            handle.result()


# -- the example and the README ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_the_example_s_tests_pass_with_the_package_s_fixture() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_orders.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_the_readme_s_test_kit_snippets_are_the_example_s_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Testing workflows") : readme.index("## The dashboard")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    source = (ROOT / "examples" / "test_orders.py").read_text()
    assert len(blocks) == 2
    for block in blocks:
        assert block.strip("\n") in source


def test_a_schedule_fires_as_time_moves_and_stops_when_paused() -> None:
    with env_of(services=[MailerImpl()]) as env:
        schedule = env.client.schedule("daily", Reminder.run, "team@example.com", cron="0 9 * * *")
        env.skip(timedelta(days=2, hours=10))
        # A Reminder runs 25 h: the firing of day 2 is skipped (overlap="skip"), not day 3's.
        fired = sorted(i.id for i in env.client.list(workflow=Reminder))
        assert fired == ["daily@2030-01-01T09:00:00Z", "daily@2030-01-03T09:00:00Z"]
        [info] = env.client.list_schedules()
        assert info.id == "daily" and not info.paused
        schedule.pause()
        env.skip(timedelta(days=3))
        assert env.client.count(workflow=Reminder) == 2
        env.client.schedule("often", Reminder.run, "x", cron="0 * * * *", overlap="allow")
        env.skip(timedelta(hours=3))
        assert env.client.count(workflow=Reminder) == 5


@workflow("Subscription")
class Unpatched(Workflow):
    """examples.versioning's Subscription, receipts mailed without `patched()`."""

    def run(self, account: str, period: float, months: int, receipts: list[str]) -> list[str]:
        billing = self.new_service(Billing)
        receipt = billing.mail(account, billing.charge(account, len(receipts) + 1))
        self.sleep(period)
        return [*receipts, receipt]


def test_continue_as_new_and_a_patched_deploy_on_the_kit() -> None:

    month = timedelta(days=30).total_seconds()
    with WorkflowEnvironment([BillingImpl()], [SubscriptionBefore], auto_skip=True) as before:
        handle = before.client.dispatch(SubscriptionBefore.run, "acme", month, 3, [])
        assert handle.result() == [f"charged acme for period {n}" for n in (1, 2, 3)]
        assert handle.describe().run == 3  # one run per period: a fresh history each
        names = [e["event"] for e in handle.history()]  # the last run's only
        assert names.count("Started") == 1 and names.count("TaskSucceeded") == 1
        old = before.client.dispatch(SubscriptionBefore.run, "old", month, 3, [])
        before.skip(month)  # its second run (a history of its own) is mid-period
        assert old.describe().run == 2
        history = old.history()  # recorded by the code before the deploy
    # The patched code replays that history (patched() is False there); unpatched, it diverges.
    before.replay(history, Subscription, old.id)
    with pytest.raises(NonDeterministicWorkflow, match=r"task Billing\.mail"):
        before.replay(history, Unpatched, old.id)
    with WorkflowEnvironment([BillingImpl()], [Subscription], auto_skip=True) as after:
        new = after.client.dispatch(Subscription.run, "new", month, 2, [])
        assert new.result() == [f"charged new for period {n} (mailed)" for n in (1, 2)]
        assert new.describe().patches == ["mail-receipts"]
