"""Free TCP ports on 127.0.0.1 for brokers that tests start themselves.

Ports are picked below the kernel's ephemeral range: a broker that a test stops and starts
again must find its port free, and a port of that range can be taken meanwhile by any outgoing
connection (librdkafka reconnecting to the stopped broker may even connect to itself).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20_000


def free_port_pair(nodes: int = 1) -> int:
    """A port p such that p..p+nodes-1 (brokers) and p+100..p+100+nodes-1 (their controllers)
    are all free, and all below the ephemeral range."""
    highest = max(_ephemeral_start(), _LOWEST + 5_000) - 101 - nodes
    for _ in range(500):
        port = random.randint(_LOWEST, highest)
        wanted = [port + i for i in range(nodes)] + [port + 100 + i for i in range(nodes)]
        if all(_free(p) for p in wanted):
            return port
    raise RuntimeError(f"no free ports found between {_LOWEST} and {highest}")


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
