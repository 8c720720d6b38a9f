"""Schedules: a report workflow started on a cron expression, on Kafka.

- `ReportWorkflow` ("Report") asks the `Reports` service for the report of a team and returns
  it. A schedule starts it every 2 seconds (a 6-field cron, seconds first); each firing starts
  the workflow `<schedule id>@<fire time, ISO UTC>`, so a firing is never started twice.
- The tour creates the schedule, waits for three firings, lists the schedules, pauses,
  resumes and deletes it, and shows the workflows the firings started.

    .venv/bin/python -m examples.schedules    # the engine in this process

Kafka: `--bootstrap` (default `$INFINITIC_KAFKA`, else 127.0.0.1:9092); namespace `schedules`
(`-n`); engine state in `.infinitic/schedules/tour`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

from infinitic_streams import InfiniticClient, Worker, Workflow, service, task_context, workflow


@service("Reports")
class Reports:
    def build(self, team: str) -> str: ...


class ReportsImpl(Reports):
    def build(self, team: str) -> str:
        return f"report of {team} for {task_context().workflow_id}"


@workflow("Report")
class ReportWorkflow(Workflow):
    def run(self, team: str) -> str:
        return self.new_service(Reports).build(team)


SERVICES = [ReportsImpl]
WORKFLOWS = [ReportWorkflow]


def wait_for_firings(client: InfiniticClient, schedule_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while client.get_schedule(schedule_id).describe().fired < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"schedule {schedule_id} did not fire {count} times in 60 s")
        time.sleep(0.5)


def tour(client: InfiniticClient, run: str) -> None:
    schedule_id = f"reports-{run}"
    schedule = client.schedule(
        schedule_id,
        ReportWorkflow.run,
        "platform",
        cron="*/2 * * * * *",  # every 2 s: 6 fields, the seconds first
        timezone="Europe/Paris",
        overlap="skip",  # no firing while the previous report still runs
    )
    print(schedule.describe().next_fire)  # when it fires first

    wait_for_firings(client, schedule_id, 3)
    for info in client.list_schedules():
        print(info.id, info.cron, info.paused, info.last_workflow_id)
    schedule.pause()  # no firing until resume()
    schedule.resume()  # from the first firing after now
    info = schedule.describe()
    schedule.delete()

    print(f"{info.id} fired {info.fired} times")
    last = client.get_workflow(ReportWorkflow, info.last_workflow_id or "")
    print(last.result(timeout=60))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("INFINITIC_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("-n", "--namespace", default="schedules")
    parser.add_argument("--state-dir", default=".infinitic/schedules/tour")
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
