"""What the Kafka adapter makes of librdkafka's errors (no broker needed)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from infinitic_streams.kafka.errors import Kind, classify
from infinitic_streams.kafka.producer import _served


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION), Kind.RETRIABLE),
        (KafkaError(KafkaError._ALL_BROKERS_DOWN), Kind.RETRIABLE),
        (KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), Kind.RETRIABLE),
        (KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED), Kind.AUTH),
        (KafkaError(KafkaError._FENCED, fatal=True), Kind.FATAL),
        (KafkaError(KafkaError.INVALID_PRODUCER_EPOCH), Kind.FATAL),
        (KafkaError(KafkaError._STATE, txn_requires_abort=True), Kind.ABORTABLE),
        (KafkaError(KafkaError.POLICY_VIOLATION), Kind.OTHER),
    ],
)
def test_errors_are_classified_by_what_the_caller_can_do(error: KafkaError, kind: Kind) -> None:
    assert classify(error) is kind


def test_a_fatal_error_raised_from_inside_a_flush_comes_out_as_itself() -> None:
    """confluent-kafka raises a fatal error from its error callback; a delivery callback run
    after it then fails with a SystemError caused by that error, or by nothing (both seen
    when fenced): both are the fatal error of a broken producer."""
    fatal = KafkaException(KafkaError(KafkaError._FENCED, fatal=True))

    def flush(timeout: float) -> int:
        raise SystemError("<method 'code'> returned a result with an exception set") from fatal

    with pytest.raises(KafkaException) as raised:
        _served(flush, 1.0)
    assert raised.value is fatal

    def lost(timeout: float) -> int:  # a log callback ran meanwhile: the cause is gone
        raise SystemError("<built-in method flush> returned NULL without setting an exception")

    with pytest.raises(KafkaException) as raised:
        _served(lost, 1.0)
    assert classify(raised.value.args[0]) is Kind.FATAL  # the producer is replaced
    assert "returned NULL" in raised.value.args[0].str()
