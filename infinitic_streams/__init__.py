"""infinitic-streams: durable workflows as plain Python classes, on Apache Kafka."""

from infinitic_streams.errors import InfiniticError, SerializationError

__all__ = ["InfiniticError", "SerializationError"]
__version__ = "0.1.0"
