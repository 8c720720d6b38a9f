"""What the dashboard reads and acts through: an `InfiniticClient` (workflows: list, count,
describe, history, retry, cancel, signal) and Kafka's metadata (groups, offsets, the dead-letter
topic). Never the engine's store: the dashboard runs anywhere a client can."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from infinitic_streams.client import InfiniticClient
from infinitic_streams.dashboard.groups import GroupsMonitor
from infinitic_streams.dashboard.letter_box import LetterBox
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.topics import Topics

RUNNING_CHECK_S = 5.0  # how long the answer "does a group have members" is kept
RUNNING_TIMEOUT_S = 3.0


class NotRunning(InfiniticError):
    """What would answer (the engine, the visibility index) does not run: said at once
    rather than after a query's timeout."""


class Backend:
    """The dashboard's view of one namespace. The client is made at the first page that needs
    it (it creates the namespace's client topics when missing)."""

    def __init__(
        self,
        kafka: Mapping[str, Any],
        namespace: str = "default",
        partitions: int = 8,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.kafka = dict(kafka)
        self.namespace = namespace
        self.topics = Topics(namespace, partitions, max_payload_bytes)
        self.admin = Admin(self.kafka)
        self.letters = LetterBox(self.kafka, self.admin, self.topics)
        self.groups = GroupsMonitor(self.admin, self.topics)
        self._partitions = partitions
        self._client: InfiniticClient | None = None
        self._lock = threading.Lock()
        self._running: dict[str, tuple[float, bool | None]] = {}

    @property
    def client(self) -> InfiniticClient:
        with self._lock:
            if self._client is None:
                self._client = InfiniticClient(
                    self.kafka, self.namespace, self._partitions, self.topics.max_payload_bytes
                )
            return self._client

    def require_index(self) -> None:
        """`NotRunning` when no visibility index consumes the namespace (list, count)."""
        if self._has_members(self.topics.visibility_group) is False:
            raise NotRunning(
                f"no visibility index runs for namespace {self.namespace!r}, so workflows "
                "cannot be listed: a Worker with engine=True runs one (`infinitic-streams "
                "engine`, `worker` or `dev`)"
            )

    def require_engine(self) -> None:
        """`NotRunning` when no engine consumes the namespace (describe, history, cancel)."""
        if self._has_members(self.topics.engine_group) is False:
            raise NotRunning(
                f"no engine runs for namespace {self.namespace!r}, so nothing can answer: "
                "start one (`infinitic-streams engine`, `worker` or `dev`)"
            )

    def _has_members(self, group: str) -> bool | None:
        """Whether `group` has members now (None: Kafka did not say), asked at most every
        RUNNING_CHECK_S."""
        now = time.monotonic()
        checked = self._running.get(group)
        if checked is not None and now - checked[0] < RUNNING_CHECK_S:
            return checked[1]
        try:
            answer: bool | None = self.admin.group_members(group, RUNNING_TIMEOUT_S) > 0
        except InfiniticError:
            answer = None
        self._running[group] = (now, answer)
        return answer

    def close(self) -> None:
        self.letters.close()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
