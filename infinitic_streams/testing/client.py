"""`env.client`: the client's API (`InfiniticClient`, same handles and groups) over the test
kit's in-memory runtime instead of Kafka. A request is handled before the call returns; a
wait for a result runs what can run (and, with `auto_skip`, jumps to the next timer)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future
from typing import Protocol

from infinitic_streams.client.answers import Answers
from infinitic_streams.client.client import InfiniticClient, _envelope
from infinitic_streams.errors import InfiniticError
from infinitic_streams.protocol import Message, QueryReply, encode
from infinitic_streams.topics import Topics


class Host(Protocol):
    """What the client needs of its environment."""

    def send(self, topic: str, key: bytes, value: bytes) -> None: ...

    def progress(self) -> bool:
        """Run what can run (a timer with auto_skip); False when nothing could."""
        ...

    def stuck(self, workflow_id: str) -> str:
        """Why a workflow cannot go on, for an error message."""
        ...


class MemoryAnswers(Answers):
    def __init__(self, host: Host) -> None:
        super().__init__()
        self._host = host

    def _wait(self, workflow_id: str, remaining: float | None) -> None:
        if remaining is not None and remaining <= 0:
            return
        if not self._host.progress():
            raise TimeoutError(self._host.stuck(workflow_id))


class TestClient(InfiniticClient):
    """An `InfiniticClient` whose requests go to the environment's runtime."""

    __test__ = False  # not a pytest test class

    def __init__(self, host: Host, topics: Topics) -> None:  # no Kafka: no super().__init__
        self.kafka: dict[str, object] = {}
        self.topics = topics
        self.client_id = uuid.uuid4().hex[:12]
        self._closed = False
        self._host = host
        self._replies = MemoryAnswers(host)  # type: ignore[assignment]
        self.reply_to = f"0:{self.client_id}"
        self._visibility_partitions = 1
        self._engine_checked_at = None

    def close(self) -> None:
        self._closed = True

    def engine_running(self) -> bool:
        return True

    def _no_engine_hint(self) -> str:
        return ""

    def _partitions_of(self, topic: str) -> int:
        return 1

    def _send_all(self, topic: str, messages: list[tuple[str, Message, int]]) -> None:
        if self._closed:
            raise InfiniticError("this WorkflowEnvironment is closed")
        now = int(time.time() * 1000)
        for key, message, _ in messages:
            self._host.send(topic, key.encode(), encode(_envelope(message, now)))

    def _answer(self, future: Future[QueryReply], about: str) -> QueryReply:
        if not future.done():
            future.cancel()
            raise InfiniticError(f"no answer about {about}: the engine did not answer it")
        return future.result()

    def take(self, key: bytes | None, message: Message) -> None:
        """An answer produced to the replies topic (for this client when keyed by its id)."""
        if key == self.client_id.encode():
            self._replies.take(message)  # type: ignore[attr-defined]
