"""A small stateful stream-processing runtime on confluent-kafka and RocksDB.

A `Processor` handles one message at a time with the state of the message's partition; the
`StreamApp` does the rest: partition assignment, RocksDB stores restored from changelogs,
exactly-once commits through Kafka transactions, durable timers, dead letters and metrics.
"""

from infinitic_streams.streams.app import StreamApp
from infinitic_streams.streams.config import StreamConfig
from infinitic_streams.streams.context import Context
from infinitic_streams.streams.processor import Processor, Record, RetryLater, Timer

__all__ = ["Context", "Processor", "Record", "RetryLater", "StreamApp", "StreamConfig", "Timer"]
