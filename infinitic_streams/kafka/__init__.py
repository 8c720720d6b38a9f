"""Thin wrappers around confluent-kafka: the only place that talks to Kafka directly."""
