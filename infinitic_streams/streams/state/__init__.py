"""Partition state: the RocksDB store, the in-memory transaction over it, and its recovery."""
