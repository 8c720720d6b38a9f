"""A worker's HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the process runs) and
`/readyz` (its stream apps and service workers joined their groups and restored their
partitions), for Prometheus and Kubernetes probes. Standard library only, one thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger("infinitic_streams.worker")
Readiness = Callable[[], str | None]  # None when ready, else why not


class MetricsEndpoint:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness
    ) -> None:
        self._registry, self._readiness = registry, readiness
        handler = self._handler_class()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics endpoint", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsEndpoint:
        self._thread.start()
        host, port = self.address
        logger.info("metrics on http://%s:%d/metrics (and /healthz, /readyz)", host, port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(endpoint._registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._reply(200, b"ok\n")
                elif path == "/readyz":
                    why = endpoint._readiness()
                    if why is None:
                        self._reply(200, b"ready\n")
                    else:
                        self._reply(503, f"not ready: {why}\n".encode())
                else:
                    self._reply(404, b"try /metrics, /healthz or /readyz\n")

            def _reply(self, code: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a scrape every few seconds is not news

        return Handler
