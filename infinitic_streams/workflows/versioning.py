"""Versioning workflow code under running workflows (`patched`, `deprecate_patch`), and the
unwind of a run that continues as new.

A workflow that started with old code replays its history with the code deployed now, so a
change must keep the old path for old histories: `if self.patched("id"): new else: old`.
The answer is recorded like any step, as a `PatchCommand` (history: `PatchRecorded`) at the
next sequence number:
- replaying, the next recorded command is that marker: True (the marker's number is used);
- replaying, the next recorded command is another step: the history was made by the old code,
  which reached this point without a marker: False, and no number is used, so the old path's
  commands keep their numbers;
- live (nothing recorded at the next number): the marker is recorded, True.
The answer for an id is kept for the rest of the run (a second call gives the same answer).
Once no running workflow can take the old path, `deprecate_patch("id")` replaces the `if`:
it records nothing and, replaying a history that holds the marker at the next number, skips
it, so histories made with `patched` still replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.workflows.commands import PatchCommand
from infinitic_streams.workflows.scheduler import Unwind

if TYPE_CHECKING:
    from infinitic_streams.workflows.execution import WorkflowExecution


class ContinueAsNew(Unwind):
    """Raised by `continue_as_new()` where it is called: the run's branches end (their
    `finally` blocks run), workflow code cannot catch it with `except Exception`."""


class Patches:
    """The patch answers of one run of a workflow instance."""

    def __init__(self, execution: WorkflowExecution) -> None:
        self._execution = execution
        self._answers: dict[str, bool] = {}

    def patched(self, change_id: str) -> bool:
        if change_id in self._answers:
            return self._answers[change_id]
        execution = self._execution
        recorded = execution._recorded.get(execution._seq + 1)
        if recorded is None or _is_marker(recorded, change_id):
            execution.issue(lambda seq: PatchCommand(seq, change_id))
            answer = True
        else:  # the old code was here and went on without the change
            answer = False
        self._answers[change_id] = answer
        return answer

    def deprecate(self, change_id: str) -> None:
        execution = self._execution
        recorded = execution._recorded.get(execution._seq + 1)
        if recorded is not None and _is_marker(recorded, change_id):
            execution.issue(lambda seq: PatchCommand(seq, change_id))  # consumed, not recorded


def _is_marker(command: object, change_id: str) -> bool:
    return isinstance(command, PatchCommand) and command.change_id == change_id
