"""The test kit's pytest fixture, registered by the package (entry point `pytest11`):

    def test_reminder(workflow_environment):
        env = workflow_environment(services=[MailerImpl()], workflows=[Reminder], auto_skip=True)
        assert env.client.dispatch(Reminder.run, "me").result() == "..."

Each environment the test makes is closed when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infinitic_streams.testing.environment import WorkflowEnvironment


@pytest.fixture
def workflow_environment() -> Iterator[Callable[..., WorkflowEnvironment]]:
    """A factory of `WorkflowEnvironment`s (same arguments), closed after the test."""
    made: list[WorkflowEnvironment] = []

    def make(*args: Any, **kwargs: Any) -> WorkflowEnvironment:
        made.append(WorkflowEnvironment(*args, **kwargs))
        return made[-1]

    yield make
    for env in made:
        env.close()
