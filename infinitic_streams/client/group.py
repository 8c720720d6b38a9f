"""`WorkflowGroup`: every workflow of a class carrying a tag (`client.get_workflows`).

Each action is one request to the engine that owns the tag's partition of the tag index: it
reads the group there and sends each member the order (see `engine/tags.py`), then answers how
many it reached. Cost grows with the group, not with the number of workflows."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from infinitic_streams import payload
from infinitic_streams.client.handle import encode_signal
from infinitic_streams.errors import InfiniticError
from infinitic_streams.protocol import GroupAction, GroupRequest, Payload
from infinitic_streams.protocol.replies import GroupAnswer

if TYPE_CHECKING:
    from infinitic_streams.client.client import InfiniticClient


class WorkflowGroup:
    def __init__(
        self, client: InfiniticClient, cls: type | None, workflow_name: str, tag: str
    ) -> None:
        self._client, self._cls = client, cls
        self.workflow_name, self.tag = workflow_name, tag

    def ids(self) -> list[str]:
        """The ids of every workflow of the group, in any status (until its retention ends)."""
        return self._act(GroupAction.IDS).ids

    def signal(self, channel: str, value: Any) -> int:
        """Signal the running workflows of the group; return how many it reached."""
        data = encode_signal(self._cls, channel, value)
        return self._act(GroupAction.SIGNAL, channel, Payload(data=data)).reached

    def cancel(self) -> int:
        """Cancel the running workflows of the group; return how many it reached."""
        return self._act(GroupAction.CANCEL).reached

    def retry(self) -> int:
        """Retry the failed workflows of the group; return how many it reached."""
        return self._act(GroupAction.RETRY).reached

    def _act(
        self, action: GroupAction, channel: str | None = None, value: Payload | None = None
    ) -> GroupAnswer:
        request_id = uuid.uuid4().hex
        request = GroupRequest(
            request_id=request_id,
            tag=self.tag,
            workflow_name=self.workflow_name,
            action=action,
            channel=channel,
            value=value,
            reply_to=self._client.reply_to,
        )
        topic = self._client.topics.tags
        reply = self._client._request(self.tag, request, request_id, topic)
        answer: GroupAnswer = payload.decode(reply.data, GroupAnswer)  # type: ignore[assignment]
        if answer.error:
            raise InfiniticError(f"{action.lower()} of group {self.tag!r} refused: {answer.error}")
        return answer
