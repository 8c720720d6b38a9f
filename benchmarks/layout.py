"""The deployed layout of benchmarks/workflows.py (`--layout processes`): the engine (with the
visibility index) and the service worker each in its own process, as pods would run them; the
benchmark's process is the client.

    python benchmarks/layout.py engine|worker CONFIG_JSON

runs one of them (a `Worker` until SIGTERM) from the settings `Processes` passes; it serves
/metrics and /readyz on the given port, which the benchmark reads. The scripts run as
`python benchmarks/X.py`, which puts this folder on sys.path: workflows.py and scale.py import
this module as `layout`, and a process started here imports the workload from `workflows` (or
from the module its settings name: scale.py's).
"""

from __future__ import annotations

import importlib
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

ROLES = ("engine", "worker")
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


class Processes:
    """The engine and the service worker as child processes of the benchmark."""

    def __init__(self, config: Mapping[str, Any], work_dir: Path) -> None:
        """`config`: bootstrap, namespace, kafka, stream, concurrency, partitions, and
        optionally workload (the benchmark module whose workflows and services run)."""
        self.ports = {role: free_port() for role in ROLES}
        self.logs = {role: work_dir / f"{role}.log" for role in ROLES}
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        script = Path(__file__).resolve()
        try:
            for role in ROLES:
                settings = {
                    **config,
                    "metrics_port": self.ports[role],
                    "state_dir": str(work_dir / f"{role}-state"),
                }
                with self.logs[role].open("wb") as log_file:
                    self.children[role] = subprocess.Popen(
                        [sys.executable, str(script), role, json.dumps(settings)],
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                    )
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> dict[str, int]:
        return {role: child.pid for role, child in self.children.items()}

    def log_tail(self, role: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.logs[role].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        """Raise if a process has ended (with the end of its log)."""
        for role, child in self.children.items():
            code = child.poll()
            if code is not None:
                raise RuntimeError(
                    f"the {role} process ended early (exit {code}):\n{self.log_tail(role)}"
                )

    def wait_ready(self) -> None:
        """Until both answer /readyz with 200: joined their groups, restored their state."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for role in ROLES:
            while True:
                self.check()
                status, body = http_get(f"http://127.0.0.1:{self.ports[role]}/readyz", 2.0)
                if status == 200:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {role} process is not ready: {body.strip()}")
                time.sleep(0.1)

    def samples(self, role: str = "engine") -> Iterator[Sample]:
        """The samples of the process's /metrics."""
        status, body = http_get(f"http://127.0.0.1:{self.ports[role]}/metrics")
        if status != 200:
            self.check()
            raise RuntimeError(f"the {role} process's /metrics answered {status}: {body[:200]}")
        for family in text_string_to_metric_families(body):
            yield from family.samples

    def stop(self) -> None:
        """SIGTERM each, then wait; SIGKILL what does not end in time."""
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


def workload(module: str) -> tuple[list[type], list[object]]:
    """The workflow classes and service implementations to run: workflows.py's by default;
    another benchmark module (settings "workload", e.g. "scale") names its own in WORKFLOWS
    (classes) and SERVICES (implementation classes, made with no argument)."""
    if module == "workflows":
        from workflows import Chain, Echo, NoopImpl, Parent, Signals

        return [Chain, Signals, Echo, Parent], [NoopImpl()]
    loaded = importlib.import_module(module)
    return list(loaded.WORKFLOWS), [service() for service in loaded.SERVICES]


def serve(role: str, settings: dict[str, Any]) -> None:
    """Run the engine (+ visibility index) or the service worker until SIGTERM."""
    from infinitic_streams import Worker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    engine = role == "engine"
    workflows, services = workload(settings.get("workload", "workflows"))
    Worker(
        {"bootstrap.servers": settings["bootstrap"], **settings["kafka"]},
        settings["namespace"],
        services=[] if engine else services,
        workflows=workflows if engine else [],
        engine=engine,
        state_dir=settings["state_dir"],
        concurrency=settings["concurrency"],
        partitions=settings["partitions"],
        stream=settings["stream"],
        metrics_port=settings["metrics_port"],
        metrics_host="127.0.0.1",
    ).run()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ROLES:
        sys.exit(__doc__)
    serve(sys.argv[1], json.loads(sys.argv[2]))
