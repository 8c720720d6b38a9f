"""Free TCP ports on 127.0.0.1 for brokers that tests start themselves."""

from __future__ import annotations

import socket


def free_port_pair() -> int:
    """A port p such that p and p+100 (the controller port) are both free."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 100 < 65536 and _free(port) and _free(port + 100):
            return port
    raise RuntimeError("no free port pair found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
