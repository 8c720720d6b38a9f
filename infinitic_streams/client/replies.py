"""Where a client reads its answers: one partition of the namespace's `<ns>.replies` topic,
picked at random and read from its end in a background thread (`read_committed`: the engine
answers after its transaction commits). Records keyed by another client's id are skipped.

Two kinds of answers: a `WorkflowResult` (a workflow this client waits for has ended) and a
`QueryReply` (to a request carrying a request id: a query, a signal, a cancel, a group)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from infinitic_streams.errors import InfiniticError, WorkflowNotFound
from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.protocol import (
    EnvelopeDecodeError,
    QueryReply,
    WorkflowResult,
    WorkflowStatus,
    decode,
)
from infinitic_streams.topics import REPLY_PARTITIONS

logger = logging.getLogger("infinitic_streams.client")


class Replies:
    def __init__(self, kafka: Mapping[str, Any], topic: str, client_id: str) -> None:
        self._consumer = Consumer(
            kafka,
            f"{topic}.{client_id}",  # never joined nor committed
            required={"isolation.level": "read_committed"},
        )
        partition = random.randrange(REPLY_PARTITIONS)
        self.reply_to = f"{partition}:{client_id}"
        # Start at the current end: every answer to this client comes after its first request.
        start = self._consumer.end_offset(TopicPartition(topic, partition))
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._key = client_id.encode()
        self._results: dict[str, tuple[int, WorkflowResult]] = {}  # with their arrival number
        self._arrivals = 0
        self._requests: dict[str, Future[QueryReply]] = {}
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self.broken: InfiniticError | None = None  # what ended the listener, if anything
        self._listener = threading.Thread(target=self._listen, name="infinitic client", daemon=True)
        self._listener.start()

    def close(self) -> None:
        """Stop reading; the listener closes the consumer itself (a librdkafka consumer must
        not be closed by one thread while another consumes)."""
        self._closed.set()
        self._listener.join(15)

    def expect(self, request_id: str) -> Future[QueryReply]:
        """A future that gets the QueryReply to `request_id` (register before sending)."""
        future: Future[QueryReply] = Future()
        self._requests[request_id] = future
        future.add_done_callback(lambda _: self._requests.pop(request_id, None))
        return future

    def latest(self, workflow_id: str) -> WorkflowResult | None:
        """The last end of this workflow that reached this client, if any."""
        with self._changed:
            return self._results.get(workflow_id, (0, None))[1]

    def mark(self) -> int:
        """The arrival number of the last answer so far: `wait_result(after=mark())` waits
        for an answer that comes later."""
        with self._changed:
            return self._arrivals

    def wait_result(
        self,
        workflow_id: str,
        timeout: float | None,
        asked: Future[QueryReply] | None,
        after: int = 0,
    ) -> WorkflowResult | None:
        """The workflow's end, from an answer that arrived after `after` (None after
        `timeout`); `WorkflowNotFound` when the RESULT query `asked` says there is no such
        workflow."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                self.check()
                arrival, result = self._results.get(workflow_id, (0, None))
                if (
                    result is not None
                    and arrival > after
                    and result.status != WorkflowStatus.RUNNING
                ):
                    return result
                if asked is not None and asked.done() and not asked.result().found:
                    raise WorkflowNotFound(workflow_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._changed.wait(remaining if remaining is not None else 1.0)

    def check(self) -> None:
        if self.broken is not None:
            raise self.broken

    def _listen(self) -> None:
        try:
            self._read()
        except InfiniticError as error:  # refused credentials, a fatal client error
            logger.error("the client stopped reading answers: %s", error)
            self.broken = error
            for future in list(self._requests.values()):
                if not future.done():
                    future.set_exception(error)
            with self._changed:
                self._changed.notify_all()
        finally:
            self._consumer.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            for record in self._consumer.consume(100, 0.1):
                if record.key() != self._key:
                    continue  # another client's answer
                try:
                    message = decode(record.value()).message
                except EnvelopeDecodeError:
                    continue
                if isinstance(message, WorkflowResult):
                    with self._changed:
                        self._arrivals += 1
                        self._results[message.workflow_id] = (self._arrivals, message)
                        self._changed.notify_all()
                elif isinstance(message, QueryReply):
                    future = self._requests.get(message.request_id)
                    if future is not None and not future.done():
                        future.set_result(message)
                    with self._changed:
                        self._changed.notify_all()
