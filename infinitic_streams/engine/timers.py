"""Durable time of the engine: the keys of its runtime timers, and workflow timers firing.

A timer key is `kind NUL seq NUL attempt NUL workflow id`; the runtime keeps timers in the
partition's store and fires each exactly once, in a transaction (`streams/`). Kinds:
- `T` a task attempt's timeout (seq, attempt), `R` a task's retry delay (seq): `tasks.py`;
- `W` a workflow timer (`self.timer()`, `self.sleep()`) (seq): here;
- `X` the retention of an ended workflow: `lifecycle.py`;
- `O` the timeout of a workflow (`@workflow(timeout=...)`): `cancel.py`;
- `S` the next firing of a schedule (the schedule id in the workflow id's place): `schedules.py`.
- `N` the start of a new run (continue-as-new): `continuation.py`.
"""

from __future__ import annotations

from infinitic_streams.engine import state as s
from infinitic_streams.engine import storage
from infinitic_streams.streams import Context

TASK_TIMEOUT, TASK_RETRY, WORKFLOW_TIMER, RETENTION = b"T", b"R", b"W", b"X"
WORKFLOW_TIMEOUT, SCHEDULE, NEW_RUN = b"O", b"S", b"N"


def timer_key(kind: bytes, workflow_id: str, seq: int = 0, attempt: int = 0) -> bytes:
    return kind + b"\x00" + f"{seq}\x00{attempt}\x00".encode() + workflow_id.encode()


def parse_timer_key(key: bytes) -> tuple[bytes, str, int, int]:
    kind, seq, attempt, workflow_id = key.split(b"\x00", 3)
    return kind, workflow_id.decode(), int(seq), int(attempt)


def schedule(ctx: Context, workflow_id: str, seq: int, due_ms: int) -> None:
    """Start the durable timer of the workflow's command `seq`."""
    ctx.schedule(timer_key(WORKFLOW_TIMER, workflow_id, seq), due_ms)


def fired(ctx: Context, workflow_id: str, seq: int, now: int) -> s.Facts | None:
    """A workflow timer fell due: its `TimerFired` is a fact, recorded whether the workflow
    runs or is FAILED (a `retry()` replays it)."""
    state = storage.load_state(ctx, workflow_id)
    if state is None or state.status not in s.RECORDING:
        return None
    return s.Facts(state, [s.TimerFired(now, seq)])
