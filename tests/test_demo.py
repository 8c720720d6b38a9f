"""`make demo` as a new user runs it, on real brokers: DEMO_RUNS runs (the issue's 5 with
INFINITIC_DEMO_RUNS=5) each on a fresh broker (a new
run dir and port each; one demo dir, so from the second run on it holds the state of a broker
that is gone), DEMO_RUNS runs on one running broker, one on $INFINITIC_KAFKA; Ctrl-C while the
broker starts and while workflows run; an engine that cannot start.

Each run is the real command, `make demo` with the Makefile's variables, in a subprocess: it
must exit 0, print each workflow's outcome and, for each, a `describe` and a `history` command
naming the namespace and the bootstrap servers, and leave the broker as asked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infinitic_streams.kafka.admin import is_reachable
from infinitic_streams.local_kafka import cluster
from infinitic_streams.local_kafka.processes import accepts, is_running
from infinitic_streams.local_kafka.provision import default_cache_dir

from .ports import free_port_pair

REPO = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
RUN_TIMEOUT = 300.0  # one `make demo`, on a busy machine; it has its own, shorter, bounds
BROKER_TIMEOUT = 180.0
# Runs per test: 2 in `make test` (its time budget), the 5 with INFINITIC_DEMO_RUNS=5
# (`INFINITIC_DEMO_RUNS=5 make test PYTEST_ARGS=tests/test_demo.py`). The running-broker test
# interrupts its next-to-last run: it needs at least 2.
DEMO_RUNS = max(2, int(os.environ.get("INFINITIC_DEMO_RUNS", "2")))

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        MAKE is None or not (REPO / ".venv" / ".installed").exists(),
        reason="`make demo` needs make and the project's .venv (`make install`)",
    ),
]


def quiet(_: str) -> None:
    pass


def free_port() -> int:
    """A free broker port whose controller port (+100) is free too. `INFINITIC_TEST_PORTS=a-b`
    takes it from that range (a machine shared with others' brokers)."""
    if not (span := os.environ.get("INFINITIC_TEST_PORTS")):
        return free_port_pair()
    first, last = (int(part) for part in span.split("-"))
    for port in range(first, last + 1):
        if port not in _TAKEN and not accepts(port) and not accepts(port + 100):
            _TAKEN.add(port)
            return port
    raise RuntimeError(f"no free port left in INFINITIC_TEST_PORTS={span}")


_TAKEN: set[int] = set()


def demo_env(kafka: str | None = None) -> dict[str, str]:
    """This process's environment without `make test`'s Kafka and make's own variables."""
    dropped = ("INFINITIC_KAFKA", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    if kafka is not None:
        env["INFINITIC_KAFKA"] = kafka
    return env


def make_args(target: str, *variables: str) -> list[str]:
    assert MAKE is not None
    return [MAKE, "--no-print-directory", target, *variables]


def make(
    target: str, *variables: str, kafka: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        make_args(target, *variables),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=demo_env(kafka),
        check=False,
    )


@dataclass
class DemoPlace:
    port: int
    run_dir: Path
    demo_dir: Path

    def variables(self) -> list[str]:
        return [
            f"DEMO_PORT={self.port}",
            f"DEMO_RUN_DIR={self.run_dir}",
            f"DEMO_DIR={self.demo_dir}",
        ]

    def status(self) -> cluster.ClusterStatus:
        return cluster.status(self.run_dir)


@dataclass
class DemoRun:
    output: str  # stdout and stderr
    stdout: str
    ids: dict[str, str]  # "run", "all_sizes" -> the workflow id
    seconds: float  # the whole `make demo`


def report(what: str, runs: list[DemoRun]) -> None:
    """Durations, shown by `pytest -s` or `-rP` (to see what the runs cost on this machine)."""
    ready = [re.search(r"ready in ([\d.]+) s", run.stdout) for run in runs]
    brokers = [f"{found[1]} s" for found in ready if found]
    print(f"{what}: {', '.join(f'{run.seconds:.1f} s' for run in runs)}", end="")
    print(f" (broker ready in {', '.join(brokers)})" if brokers else "")


def run_demo(
    place: DemoPlace, *variables: str, kafka: str | None = None, commands: bool = True
) -> DemoRun:
    """`make demo`: exit code 0, both outcomes, and (with `commands`) the commands for each."""
    started = time.monotonic()
    done = make("demo", *place.variables(), *variables, kafka=kafka)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output, output
    ids = {}
    for method, images in (("run", 3), ("all_sizes", 191)):
        found = re.search(
            rf"^ImageWorkflow\.{method} (\S+): COMPLETED in [\d.]+ s: {images} images resized",
            done.stdout,
            re.MULTILINE,
        )
        assert found, output
        ids[method] = found[1]
    bootstrap = kafka or f"127.0.0.1:{place.port}"
    for workflow_id in ids.values():
        for command in ("describe", "history"):
            if commands:
                argv = printed_command(done.stdout, command, workflow_id)
                assert argv[3:] == ["--namespace", "demo", "--bootstrap", bootstrap], argv
            else:
                assert f" {command} {workflow_id} " not in done.stdout, output
    return DemoRun(output, done.stdout, ids, seconds)


def printed_command(stdout: str, command: str, workflow_id: str) -> list[str]:
    """The argv of the `infinitic-streams <command> <id> ...` line the demo printed, with the
    program as a path (from the repository) that exists."""
    for line in stdout.splitlines():
        if not line.lstrip().startswith(".venv/bin/infinitic-streams "):
            continue
        argv = shlex.split(line)
        if argv[1:3] == [command, workflow_id]:
            program = REPO / argv[0]
            assert program.name == "infinitic-streams" and program.exists(), line
            return [str(program), *argv[1:]]
    raise AssertionError(f"no `{command} {workflow_id}` command printed:\n{stdout}")


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that name `path` (brokers of a run dir, a demo)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(path) in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def wait_gone(path: Path, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_using(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def brokers() -> Iterator[list[Path]]:
    """Run dirs of the brokers a test starts: each is stopped at the end, whatever happened."""
    run_dirs: list[Path] = []
    yield run_dirs
    for run_dir in run_dirs:
        cluster.down(run_dir, log=quiet)


def interrupt(
    place: DemoPlace, after: str, delay: float = 0.0, until: Callable[[], bool] | None = None
) -> tuple[int, str]:
    """Run `make demo` as a terminal would, in a process group of its own; once a line holding
    `after` is printed (and `delay` later, or once `until()` holds), Ctrl-C it: SIGINT to the
    whole group."""
    process = subprocess.Popen(
        make_args("demo", *place.variables()),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**demo_env(), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if after in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while not seen.wait(0.1) and process.poll() is None and time.monotonic() < deadline:
            pass
        if seen.is_set():
            time.sleep(delay)
            while until is not None and not until() and process.poll() is None:
                time.sleep(0.01)
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(10)
    output = "".join(lines)
    assert after in output, output
    return process.returncode, output


# -- the runs ---------------------------------------------------------------------------------


def test_demo_on_five_fresh_brokers(tmp_path: Path, brokers: list[Path]) -> None:
    demo_dir = tmp_path / "demo"
    runs = []
    for attempt in range(DEMO_RUNS):
        place = DemoPlace(free_port(), tmp_path / f"kafka-{attempt}", demo_dir)
        brokers.append(place.run_dir)
        ran = run_demo(place)
        runs.append(ran)
        assert f"Kafka: starting a local broker on 127.0.0.1:{place.port}" in ran.stdout
        assert "Kafka is up at" in ran.stdout
        if attempt > 0:  # the state of the previous run belongs to a broker that is gone
            assert "is from another Kafka cluster (gone): starting afresh" in ran.stdout
        assert "Earlier run" not in ran.stdout
        stop = f"Stop it with: .venv/bin/infinitic-streams kafka down --run-dir {place.run_dir}"
        assert stop in ran.stdout
        assert place.status().state == "up", ran.output  # kept for the next run

        down = make("demo-down", f"DEMO_RUN_DIR={place.run_dir}")
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"Kafka at 127.0.0.1:{place.port} stopped" in down.stdout
        assert place.status().state == "down"
        assert wait_gone(place.run_dir) == []
    report("make demo on a fresh broker", runs)


def test_demo_five_times_on_a_running_broker(tmp_path: Path, brokers: list[Path]) -> None:
    place = DemoPlace(free_port(), tmp_path / "kafka", tmp_path / "demo")
    brokers.append(place.run_dir)
    record = cluster.up(
        place.run_dir, default_cache_dir(), port=place.port, log=quiet, timeout=BROKER_TIMEOUT
    )
    pid = record.nodes[0].pid
    earlier: dict[str, str] = {}
    runs = []
    for attempt in range(DEMO_RUNS):
        last = attempt == DEMO_RUNS - 1
        ran = run_demo(place, *(["KEEP_KAFKA=0"] if last else []), commands=not last)
        runs.append(ran)
        assert f"Kafka: the local broker at 127.0.0.1:{place.port} (pid {pid}," in ran.stdout
        for method, workflow_id in earlier.items():  # the ids of the run before are still there
            assert re.search(
                rf"^Earlier run: ImageWorkflow\.{method} {workflow_id}: (COMPLETED|RUNNING)$",
                ran.stdout,
                re.MULTILINE,
            ), ran.output
        earlier = ran.ids
        if not last:
            assert place.status().state == "up"
            assert is_running(pid)
            assert "the next `make demo` reuses it" in ran.stdout

        if attempt == 0:  # an engine that cannot start: a clear failure, at once
            check_engine_failure(place)
        if attempt == DEMO_RUNS - 2:  # Ctrl-C while workflows run: the broker stays, the demo ends
            code, output = interrupt(place, "ImageWorkflow.run: dispatched")
            assert code != 0 and "Traceback" not in output, output
            assert "Interrupted: the engine and workers stopped." in output, output
            assert "the next `make demo` reuses it" in output
            assert wait_gone(place.demo_dir) == []
            assert is_running(pid)
            dispatched = re.search(r"ImageWorkflow\.run: dispatched, id (\S+)", output)
            assert dispatched
            earlier = {"run": dispatched[1]}

    assert "Stopping the local Kafka" in ran.stdout
    assert place.status().state == "down"
    assert wait_gone(place.run_dir) == []
    report("make demo on a running broker", runs)


def check_engine_failure(place: DemoPlace) -> None:
    """The engine's state dir held by another process: the engine thread dies, and the demo
    says so and why (not a timeout later), with the broker left running."""
    lock_path = place.demo_dir / "state" / "demo" / "engine" / "lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = make("demo", *place.variables())
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "The demo failed: the engine and workers stopped: StateDirLocked" in output, output
    assert "Is another `make demo` or `make demo-engine` running?" in output
    assert "Traceback" not in output and "--timeout" not in output, output
    assert place.status().state == "up"


def test_demo_on_infinitic_kafka_starts_and_stops_nothing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    place = DemoPlace(free_port(), tmp_path / "kafka", tmp_path / "demo")
    ran = run_demo(place, "KEEP_KAFKA=0", kafka=kafka_bootstrap)
    assert f"Kafka: {kafka_bootstrap}, from INFINITIC_KAFKA" in ran.stdout
    assert "is not the demo's to stop: left running" in ran.stdout
    assert not (place.run_dir / "cluster.json").exists()
    assert is_reachable({"bootstrap.servers": kafka_bootstrap})


def test_ctrl_c_while_the_broker_starts_leaves_nothing_running(tmp_path: Path) -> None:
    place = DemoPlace(free_port(), tmp_path / "kafka", tmp_path / "demo")
    try:
        record = place.run_dir / "cluster.json"  # written once the broker's JVM is spawned,
        # a second or more before it serves
        code, output = interrupt(place, "Starting Kafka", until=record.exists)
        assert code != 0 and "Traceback" not in output, output
        assert "Interrupted while Kafka was starting: nothing is left running." in output, output
        assert wait_gone(place.run_dir) == []
        assert not (place.run_dir / "cluster.json").exists()
        assert wait_gone(place.demo_dir) == []
    finally:
        cluster.down(place.run_dir, log=quiet)
