"""Benchmarks on a real Kafka broker: `python benchmarks/streams.py --quick`."""
