"""infinitic-streams: durable workflows as plain Python classes, on Apache Kafka."""

import logging

from infinitic_streams.client import (
    InfiniticClient,
    ScheduleHandle,
    ScheduleInfo,
    WorkflowGroup,
    WorkflowHandle,
    WorkflowInfo,
)
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.errors import (
    InfiniticError,
    NonDeterministicWorkflow,
    ScheduleNotFound,
    SerializationError,
    TaskFailed,
    TaskTimedOut,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowNotFound,
    WorkflowTimedOut,
)
from infinitic_streams.protocol import WorkflowStatus
from infinitic_streams.worker.task_context import TaskContext, task_context
from infinitic_streams.worker.worker import Worker
from infinitic_streams.workflows.channel import Channel
from infinitic_streams.workflows.deferred import Deferred, all_of, any_of
from infinitic_streams.workflows.workflow import Workflow

__all__ = [
    "Channel",
    "Deferred",
    "InfiniticClient",
    "InfiniticError",
    "NonDeterministicWorkflow",
    "RetryPolicy",
    "ScheduleHandle",
    "ScheduleInfo",
    "ScheduleNotFound",
    "SerializationError",
    "TaskContext",
    "TaskFailed",
    "TaskTimedOut",
    "Worker",
    "Workflow",
    "WorkflowCanceled",
    "WorkflowFailed",
    "WorkflowGroup",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowNotFound",
    "WorkflowStatus",
    "WorkflowTimedOut",
    "all_of",
    "any_of",
    "service",
    "task_context",
    "workflow",
]
__version__ = "0.1.0"

# A library logs; the application decides where to (the CLI configures logging).
logging.getLogger("infinitic_streams").addHandler(logging.NullHandler())
