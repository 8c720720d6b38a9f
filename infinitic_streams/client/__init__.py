"""The client side: `InfiniticClient`, handles on one workflow (`WorkflowHandle`) or on a group
of workflows sharing a tag (`WorkflowGroup`), and what `describe()` returns (`WorkflowInfo`).
It talks to the engines through Kafka only: it never imports the engine or its storage."""

from infinitic_streams.client.client import InfiniticClient
from infinitic_streams.client.group import WorkflowGroup
from infinitic_streams.client.handle import WorkflowHandle, WorkflowInfo
from infinitic_streams.client.schedules import ScheduleHandle, ScheduleInfo

__all__ = [
    "InfiniticClient",
    "ScheduleHandle",
    "ScheduleInfo",
    "WorkflowGroup",
    "WorkflowHandle",
    "WorkflowInfo",
]
