"""The client side: `InfiniticClient`, handles on one workflow (`WorkflowHandle`) or on a group
of workflows sharing a tag (`WorkflowGroup`), and what `describe()` returns (`WorkflowInfo`).
It talks to the engines through Kafka only: it never imports the engine or its storage."""

from infinitic_streams.client.client import InfiniticClient
from infinitic_streams.client.group import WorkflowGroup
from infinitic_streams.client.handle import WorkflowHandle, WorkflowInfo

__all__ = ["InfiniticClient", "WorkflowGroup", "WorkflowHandle", "WorkflowInfo"]
