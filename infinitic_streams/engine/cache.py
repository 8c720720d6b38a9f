"""Live workflow instances kept between steps (sticky execution), so one more step costs a
switch to parked branches (greenlets), not a replay of the whole history."""

from __future__ import annotations

from collections import OrderedDict

from infinitic_streams.workflows.execution import WorkflowExecution


class ExecutionCache:
    """Live instances by workflow id, each with the history size it has seen (LRU).

    An instance is trusted only if it saw exactly the history the store holds: it must be
    what replaying those events would rebuild. Any mismatch (restart, rebalance, an aborted
    transaction that rolled the store back) drops it, and the engine replays instead."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[WorkflowExecution, int]] = OrderedDict()

    def get(self, workflow_id: str, history_size: int) -> WorkflowExecution | None:
        entry = self._entries.get(workflow_id)
        if entry is None:
            return None
        execution, seen = entry
        if seen != history_size:  # the store moved on without it (or rolled back)
            self.drop(workflow_id)
            return None
        self._entries.move_to_end(workflow_id)
        return execution

    def put(self, workflow_id: str, execution: WorkflowExecution, history_size: int) -> None:
        previous = self._entries.get(workflow_id)
        if previous is not None and previous[0] is not execution:
            previous[0].close()
        self._entries[workflow_id] = (execution, history_size)
        self._entries.move_to_end(workflow_id)
        while len(self._entries) > self._size:
            _, (evicted, _) = self._entries.popitem(last=False)
            evicted.close()

    def advance(self, workflow_id: str, seen: int, history_size: int) -> None:
        """The history grew from `seen` to `history_size` events with events that a replay
        ignores (attempt failures): an instance that saw `seen` still matches the history."""
        entry = self._entries.get(workflow_id)
        if entry is not None and entry[1] == seen:
            self._entries[workflow_id] = (entry[0], history_size)

    def drop(self, workflow_id: str) -> None:
        entry = self._entries.pop(workflow_id, None)
        if entry is not None:
            entry[0].close()

    def clear(self) -> None:
        for execution, _ in self._entries.values():
            execution.close()
        self._entries.clear()
