"""Serving the dashboard with uvicorn in a thread of its own: the socket is bound at once (so
the URL, its port included, is known and a port in use fails here), and `stop()` ends it
cleanly. `serve_until_signal` is the `infinitic-streams dashboard` command's loop: SIGINT and
SIGTERM stop it."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class DashboardServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host.strip("[]"), port))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_config=None, access_log=False, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> DashboardServer:
        """Serve in a daemon thread; return once it accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="dashboard"
        )
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the dashboard could not start on {self.url}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {self.url} in time")
            time.sleep(0.02)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._socket.close()


def serve_until_signal(server: DashboardServer) -> None:
    """Run `server` until SIGINT or SIGTERM (in the main thread), then stop it. The handler
    only sets a flag: setting an Event from a handler can deadlock the thread waiting on it."""
    stopping: list[int] = []
    with _on_signals(lambda: stopping.append(1)):
        server.start()
        while not stopping and server.running:
            time.sleep(0.2)
    server.stop()


@contextlib.contextmanager
def _on_signals(handler: Any) -> Iterator[None]:
    previous = {
        sig: signal.signal(sig, lambda *_: handler()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
