"""The test kit: `WorkflowEnvironment` runs workflows and services in memory, with time of its
own (see `environment.py`); `replay` checks recorded histories against today's code."""

from infinitic_streams.testing.environment import WorkflowEnvironment
from infinitic_streams.testing.replayer import replay

__all__ = ["WorkflowEnvironment", "replay"]
