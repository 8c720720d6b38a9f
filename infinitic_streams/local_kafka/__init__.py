"""A real Apache Kafka broker (or three) on this machine, for development and tests.

`provision` fetches the broker's jars from Maven Central into a cache, `config` writes the
KRaft configuration, and `cluster` starts, watches and stops the broker processes.
"""
