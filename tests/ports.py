"""Free TCP ports on 127.0.0.1 for brokers that tests start themselves."""

from __future__ import annotations

import socket


def free_port_pair(nodes: int = 1) -> int:
    """A port p such that p..p+nodes-1 (brokers) and p+100..p+100+nodes-1 (their controllers)
    are all free."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        wanted = [port + i for i in range(nodes)] + [port + 100 + i for i in range(nodes)]
        if max(wanted) < 65536 and all(_free(p) for p in wanted):
            return port
    raise RuntimeError("no free ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
