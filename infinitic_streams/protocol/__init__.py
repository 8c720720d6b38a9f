"""The messages infinitic-streams exchanges on Kafka, and their versioned binary format.

Pure: no Kafka here. The Kafka layer calls `encode` and `decode`; see avro/README.md for how the
Avro schema evolves.
"""

from infinitic_streams.protocol.envelope import (
    HEADER_SIZE,
    MAGIC,
    decode,
    decode_record,
    encode,
    encode_record,
    to_record,
)
from infinitic_streams.protocol.errors import EnvelopeDecodeError, SchemaError
from infinitic_streams.protocol.messages import (
    MESSAGE_TYPES,
    CancelWorkflow,
    DeadLetter,
    DispatchWorkflow,
    Envelope,
    ErrorInfo,
    ExecuteTask,
    Message,
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    RetryWorkflow,
    SendSignal,
    TaskCompleted,
    TaskFailed,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.protocol.schemas import (
    CURRENT_VERSION,
    DEFAULT_SCHEMAS,
    SchemaSet,
    reader_schema,
    writer_schema,
)

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_SCHEMAS",
    "HEADER_SIZE",
    "MAGIC",
    "MESSAGE_TYPES",
    "CancelWorkflow",
    "DeadLetter",
    "DispatchWorkflow",
    "Envelope",
    "EnvelopeDecodeError",
    "ErrorInfo",
    "ExecuteTask",
    "Message",
    "Payload",
    "QueryKind",
    "QueryReply",
    "QueryWorkflow",
    "RetryWorkflow",
    "SchemaError",
    "SchemaSet",
    "SendSignal",
    "TaskCompleted",
    "TaskFailed",
    "WorkflowResult",
    "WorkflowStatus",
    "decode",
    "decode_record",
    "encode",
    "encode_record",
    "reader_schema",
    "to_record",
    "writer_schema",
]
