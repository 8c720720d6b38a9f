"""The visibility index on the stream runtime: it reads the events topic (CloudEvents JSON,
keyed by workflow id) and the visibility-queries topic (ListWorkflows envelopes, sent by
clients to each partition), which have the same partition count. State in RocksDB, restored
from its changelog like the engine's; answers are produced after their transaction commits."""

from __future__ import annotations

import time
from typing import Any

from infinitic_streams import payload
from infinitic_streams.protocol import (
    MAGIC,
    Envelope,
    ListWorkflows,
    QueryReply,
    cloudevents,
    decode,
    encode,
)
from infinitic_streams.protocol.messages import new_message_id
from infinitic_streams.protocol.replies import ListAnswer
from infinitic_streams.streams import Context, Processor, Record
from infinitic_streams.topics import Topics
from infinitic_streams.visibility import index

MAX_LIMIT = 1000  # summaries one partition gives per query


class VisibilityProcessor(Processor):
    name = "visibility"

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.input_topics = (topics.events, topics.visibility_queries)

    def decode(self, key: bytes | None, value: bytes | None) -> Any:
        if value is not None and value[:2] == MAGIC:
            return decode(value)
        return cloudevents.parse(value)  # ValueError: the record is dead-lettered with it

    def process(self, ctx: Context, record: Record) -> None:
        if isinstance(record.value, dict):
            index.apply(ctx, record.value)
        elif isinstance(record.value.message, ListWorkflows):
            self._answer(ctx, record.value.message)
        else:
            raise ValueError(f"the visibility index does not take {type(record.value.message)}")

    def _answer(self, ctx: Context, request: ListWorkflows) -> None:
        """Found: the ListAnswer; not found: why the request is wrong (e.g. its cursor)."""
        limit = max(0, min(request.limit, MAX_LIMIT))
        try:
            answer = index.query(
                ctx, request.workflow_name, request.status, request.tag, limit, request.after
            )
            found, data = True, payload.encode(answer, ListAnswer)
        except ValueError as error:
            found, data = False, payload.encode(str(error), str)
        reply = QueryReply(request_id=request.request_id, workflow_id="", found=found, data=data)
        partition, _, client_id = request.reply_to.partition(":")
        envelope = Envelope(
            message_id=new_message_id(), sent_at_ms=int(time.time() * 1000), message=reply
        )
        ctx.emit(self.topics.replies, client_id.encode(), encode(envelope), None, int(partition))
