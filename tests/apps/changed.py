"""Workflows of `tests.apps.workflows` after a change that running instances cannot take
(for `infinitic-streams replay-check`)."""

from __future__ import annotations

from infinitic_streams import Workflow, workflow

from .workflows import Steps


@workflow("Sleeper")
class Sleeper(Workflow):
    """A task inserted before the sleep: a Sleeper recorded asleep diverges at step 1."""

    def run(self, seconds: float) -> str:
        self.new_service(Steps).add(1, 1)
        self.sleep(seconds)
        return "changed"
