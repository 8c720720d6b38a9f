"""The answers a client waits for, by what they answer: a `WorkflowResult` (a workflow this
client waits for has ended) and a `QueryReply` (to a request carrying a request id: a query,
a signal, a cancel, a group). Whoever reads them (`replies.py` from Kafka, the test kit in
memory) hands each to `take`; `wait_result` waits through `_wait`, which a reader may
override."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from infinitic_streams.errors import InfiniticError, WorkflowNotFound
from infinitic_streams.protocol import Message, QueryReply, WorkflowResult, WorkflowStatus


class Answers:
    def __init__(self) -> None:
        self._results: dict[str, tuple[int, WorkflowResult]] = {}  # with their arrival number
        self._arrivals = 0
        self._requests: dict[str, Future[QueryReply]] = {}
        self._changed = threading.Condition()
        self.broken: InfiniticError | None = None  # what ended the reader, if anything

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
                self._wait(workflow_id, remaining)

    def check(self) -> None:
        if self.broken is not None:
            raise self.broken

    def take(self, message: Message) -> None:
        """An answer arrived (one not meant for this client is ignored)."""
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

    def _wait(self, workflow_id: str, remaining: float | None) -> None:
        """Wait for another answer, while waiting for `workflow_id`'s end (called holding
        `_changed`)."""
        self._changed.wait(remaining if remaining is not None else 1.0)
