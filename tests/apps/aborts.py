"""An engine whose transaction aborts once per workflow, after a task it issued was read.

`AbortAfterTaskRead` is the engine's stream app with one change: when the transaction it is
about to commit holds a workflow's result of task `after_seq` (so it issued task
`after_seq + 1`), it waits until the service's log shows that next task running (read before
its transaction committed), then aborts the transaction instead of committing it. The
runtime redoes its inputs, which issue the same task again.
"""

from __future__ import annotations

import time
from pathlib import Path

from infinitic_streams.engine.processor import EngineProcessor
from infinitic_streams.protocol.messages import TaskCompleted
from infinitic_streams.streams import Context, Record, StreamApp

READ_TIMEOUT_S = 30.0  # with read_committed the task is never read first: abort anyway


class ArmingEngine(EngineProcessor):
    """The engine's processor, noting the tasks issued by the transaction being built."""

    def __init__(self, engine: EngineProcessor, after_seq: int) -> None:
        super().__init__(engine.engine)
        self.after_seq = after_seq
        self.armed: list[str] = []  # task ids to see read before aborting
        self.aborted: set[str] = set()  # workflows whose transaction aborted once

    def process(self, ctx: Context, record: Record) -> None:
        super().process(ctx, record)
        message = record.value.message
        if not isinstance(message, TaskCompleted) or message.workflow_id in self.aborted:
            return
        if message.task_id == f"{message.workflow_id}:{self.after_seq}":
            self.aborted.add(message.workflow_id)
            self.armed.append(f"{message.workflow_id}:{self.after_seq + 1}")


class AbortAfterTaskRead(StreamApp):
    def __init__(self, app: StreamApp, task_log: Path, after_seq: int = 2) -> None:
        assert isinstance(app.processor, EngineProcessor)
        self.arming = ArmingEngine(app.processor, after_seq)
        super().__init__(self.arming, app.config)
        self.task_log = task_log

    def _commit(self) -> None:
        if not self.arming.armed:
            super()._commit()
            return
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not self._all_ran(self.arming.armed) and time.monotonic() < deadline:
            time.sleep(0.01)
        reason = f"injected abort after tasks {', '.join(self.arming.armed)} were read"
        self.arming.armed.clear()
        self.checkpoint.abort(self.partitions.transactions(), reason)

    def _all_ran(self, task_ids: list[str]) -> bool:
        if not self.task_log.exists():
            return False
        ran = {line.split()[0] for line in self.task_log.read_text().splitlines()}
        return all(task_id in ran for task_id in task_ids)
