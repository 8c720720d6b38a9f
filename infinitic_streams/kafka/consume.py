"""Consuming a batch without waiting for a full one."""

from __future__ import annotations

from confluent_kafka import Consumer, Message


def consume_available(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to `max_messages` messages: what is there now, else the first to arrive within
    `timeout` seconds plus what came with it.

    `Consumer.consume(n, timeout)` returns early only once it has n messages, so a ready
    message would otherwise wait out the whole timeout: that would add it to every hop.
    """
    messages = consumer.consume(max_messages, 0)
    if messages or timeout <= 0:
        return messages
    messages = consumer.consume(1, timeout)
    if messages and max_messages > 1:
        messages += consumer.consume(max_messages - 1, 0)
    return messages
