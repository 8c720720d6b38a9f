"""The engine as a stream processor: decodes envelopes, hands them to `WorkflowEngine`. It
reads the engine topic (keyed by workflow id) and the tags topic (keyed by tag), which have
the same partition count: partition p of both is processed with the state of partition p."""

from __future__ import annotations

from infinitic_streams.engine.engine import WorkflowEngine
from infinitic_streams.protocol import Envelope, decode
from infinitic_streams.streams import Context, Processor, Record, Timer


class EngineProcessor(Processor):
    name = "engine"

    def __init__(self, engine: WorkflowEngine) -> None:
        self.engine = engine
        self.input_topics = (engine.topics.engine, engine.topics.tags)
        self._tasks_prefix = f"{engine.topics.namespace}.tasks."
        self._events = engine.topics.events

    def decode(self, key: bytes | None, value: bytes | None) -> Envelope:
        return decode(value)  # type: ignore[arg-type]  # None raises a clear decode error

    def waits_for_commit(self, topic: str) -> bool:
        """Service workers read tasks read_uncommitted, and the visibility index takes events
        within a commit interval: a step that only issued tasks and events need not commit
        before the next input (its task's result) arrives. Answers, and messages to the
        engine's own inputs, are waited for."""
        return not (topic.startswith(self._tasks_prefix) or topic == self._events)

    def process(self, ctx: Context, record: Record) -> None:
        self.engine.handle(ctx, record.value.message)

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        self.engine.handle_timer(ctx, timer)
