"""`make demo`: the image workflows of examples/images.py, end to end, on Kafka.

    .venv/bin/python -m examples [--port 9092] [--stop-kafka] [--timeout 60]   # make demo
    .venv/bin/python -m examples --serve   # the demo's engine and workers, until Ctrl-C

1. Kafka: `$INFINITIC_KAFKA` when set, used as it is (nothing is started or stopped); else the
   local broker of `--run-dir` when it runs; else a Kafka already answering on `--port`, used
   as it is; else a local broker started on `--port`. A local broker keeps running at the end,
   for the next run and for the commands printed, unless `--stop-kafka`.
2. The engine and the ImageUtil workers run in this process, in namespace `demo`, with their
   state in `<demo-dir>/state`: a next run on the same Kafka finds the workflows of the earlier
   ones (and says so). State left by a Kafka that is gone (another cluster id) is cleared.
3. The two workflows run one after the other. Every step is printed; each must end within
   `--timeout` seconds. Whatever goes wrong (Kafka, the engine thread dying, a timeout) ends
   the demo with a message and exit code 1; Ctrl-C ends it cleanly with exit code 130.
4. At the end: the `describe` and `history` commands for what ran, the dashboard's, and how
   to stop Kafka. `--serve` (`make demo-engine`) serves the dashboard too, on
   http://127.0.0.1:8080/ (`--dashboard-port`; 0: none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from examples.images import ImageUtilImpl, ImageWorkflow
from infinitic_streams import InfiniticClient, Worker, WorkflowFailed
from infinitic_streams.client import WorkflowHandle
from infinitic_streams.dashboard import Backend, DashboardServer, create_app
from infinitic_streams.errors import InfiniticError, WorkflowNotFound
from infinitic_streams.kafka.admin import describe_cluster, is_reachable
from infinitic_streams.local_kafka import cluster
from infinitic_streams.local_kafka.processes import accepts
from infinitic_streams.local_kafka.provision import default_cache_dir
from infinitic_streams.streams.app import StateDirLocked

NAMESPACE = "demo"
EMAIL, IMAGE_URL = "me@example.com", "https://example.com/cat.png"
DEFAULT_RUN_DIR = Path(".infinitic/kafka")  # the one `infinitic-streams kafka` uses by default
PROGRESS_EVERY_S = 10.0
STOP_TIMEOUT_S = 20.0  # for the engine and workers to stop
STOPPED = "Interrupted: the engine and workers stopped."
OTHER_PORT = " With make, choose another port: make demo DEMO_PORT=9300 (its controller: port+100)."
DASHBOARD_PORT = 8080
RECORD = "demo.json"  # in the demo dir: the Kafka cluster the state belongs to, the last ids

T = TypeVar("T")


class DemoFailed(Exception):
    """Ends the demo with this message and exit code 1."""


class DemoInterrupted(Exception):
    """Ends the demo after Ctrl-C with this message and exit code 130."""


def say(text: str = "") -> None:
    print(text, flush=True)


# Ctrl-C sets this flag, checked at every step, rather than raising KeyboardInterrupt wherever
# the main thread is (inside a Kafka client's C code it comes out as another error). A second
# Ctrl-C exits at once.
INTERRUPTED = threading.Event()


def on_sigint(*_: object) -> None:
    if INTERRUPTED.is_set():
        say("\nInterrupted again: exiting now.")
        os._exit(130)
    INTERRUPTED.set()


def check_interrupted(message: str) -> None:
    if INTERRUPTED.is_set():
        raise DemoInterrupted(message)


# -- Kafka -----------------------------------------------------------------------------------


@dataclass
class DemoKafka:
    settings: dict[str, str]
    run_dir: Path | None  # the local broker's run dir; None for a Kafka the demo must not stop

    @property
    def bootstrap(self) -> str:
        return self.settings["bootstrap.servers"]


def find_kafka(options: argparse.Namespace) -> DemoKafka:
    if address := os.environ.get("INFINITIC_KAFKA"):
        kafka = DemoKafka({"bootstrap.servers": address}, None)
        say(f"Kafka: {address}, from INFINITIC_KAFKA (used as it is: nothing started or stopped)")
        if not answers(kafka.settings):
            raise DemoFailed(
                f"INFINITIC_KAFKA={address} does not answer; unset it to use a local broker."
            )
        return kafka
    run_dir: Path = options.run_dir
    current = cluster.status(run_dir.resolve())
    if current.state == "up" and current.record is not None:
        record = current.record
        pids = ", ".join(str(node.pid) for node in record.nodes)
        say(f"Kafka: the local broker at {record.bootstrap} (pid {pids}, {run_dir}), reusing it")
        return DemoKafka(dict(record.client_settings), run_dir)
    address = f"127.0.0.1:{options.port}"
    if accepts(options.port):
        try:
            reachable = answers({"bootstrap.servers": address})
        except DemoFailed as failure:  # e.g. a KRaft controller's port
            raise DemoFailed(
                f"{address} answers, but not as a Kafka broker: {failure}.{OTHER_PORT}"
            ) from None
        if not reachable:
            raise DemoFailed(f"Port {options.port} is taken by something else.{OTHER_PORT}")
        say(
            f"Kafka: {address} answers, a broker the demo did not start: using it as it is "
            "(nothing started or stopped)"
        )
        return DemoKafka({"bootstrap.servers": address}, None)
    check_interrupted("Interrupted.")
    say(f"Kafka: starting a local broker on {address} ({run_dir}), Ctrl-C stops it...")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        record = cluster.up(
            run_dir.resolve(),
            default_cache_dir(),
            port=options.port,
            log=lambda line: say(f"  {line}"),
            timeout=options.kafka_timeout,
            stop=INTERRUPTED.is_set,
        )
    except InfiniticError as error:  # Java, Maven, a port taken, a broker that did not start
        check_interrupted("Interrupted while Kafka was starting: nothing is left running.")
        hint = OTHER_PORT if "already in use" in str(error) else ""
        raise DemoFailed(f"{error}{hint}") from None
    return DemoKafka(dict(record.client_settings), run_dir)


def answers(settings: dict[str, str]) -> bool:
    try:
        return is_reachable(settings, timeout=5.0)
    except InfiniticError as error:  # refused credentials
        raise DemoFailed(str(error)) from None


def finish_kafka(options: argparse.Namespace, kafka: DemoKafka) -> None:
    """Stop the local broker if asked, else say how to."""
    if kafka.run_dir is None:
        if options.stop_kafka:
            say(f"\nKafka at {kafka.bootstrap} is not the demo's to stop: left running.")
        return
    if options.stop_kafka:
        say(f"\nStopping the local Kafka at {kafka.bootstrap} (--stop-kafka, KEEP_KAFKA=0)...")
        cluster.down(kafka.run_dir.resolve(), log=lambda line: say(f"  {line}"))
        return
    down = f"{cli()} kafka down --run-dir {shlex.quote(str(kafka.run_dir))}"
    if kafka.run_dir == DEFAULT_RUN_DIR:
        down = f"make demo-down (or {down})"
    say(f"\nKafka keeps running at {kafka.bootstrap}: the next `make demo` reuses it.")
    say(f"Stop it with: {down}")


def cli() -> str:
    """The `infinitic-streams` beside this Python, as the user can type it from here."""
    path = Path(sys.executable).parent / "infinitic-streams"
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return shlex.quote(str(path))


# -- the demo's state: a folder of its own, kept while its Kafka cluster lives -----------------


def prepare_state(demo_dir: Path, kafka: DemoKafka) -> list[dict[str, str]]:
    """Clear the state of a Kafka cluster that is gone; return the workflows of earlier runs
    on this one (name and id)."""
    try:
        cluster_id = describe_cluster(kafka.settings, timeout=10.0).cluster_id
    except InfiniticError as error:
        raise DemoFailed(f"Kafka at {kafka.bootstrap} does not answer: {error}") from None
    state = demo_dir / "state"
    try:
        saved = json.loads((demo_dir / RECORD).read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("cluster_id") != cluster_id:
        if state.exists():
            say(f"State: {state} is from another Kafka cluster (gone): starting afresh")
            shutil.rmtree(state)
        else:
            say(f"State: {state} (new)")
        saved = {}
    else:
        say(f"State: {state}, of the earlier runs on this Kafka")
    check_interrupted("Interrupted.")
    saved["cluster_id"] = cluster_id
    write_record(demo_dir, saved)
    earlier: list[dict[str, str]] = saved.get("workflows", [])
    return earlier


def write_record(demo_dir: Path, record: dict[str, Any]) -> None:
    demo_dir.mkdir(parents=True, exist_ok=True)
    staged = demo_dir / f".{RECORD}.{os.getpid()}"
    staged.write_text(json.dumps(record, indent=2) + "\n")
    staged.replace(demo_dir / RECORD)


def remember(demo_dir: Path, workflows: list[dict[str, str]]) -> None:
    try:
        record = json.loads((demo_dir / RECORD).read_text())
    except (OSError, ValueError):
        return
    write_record(demo_dir, {**record, "workflows": workflows})


# -- the engine and workers, in a thread watched by every wait --------------------------------


def demo_worker(kafka: DemoKafka, state_dir: Path) -> Worker:
    """The engine (running ImageWorkflow) and the ImageUtil service workers."""
    return Worker(
        kafka.settings,
        NAMESPACE,
        services=[ImageUtilImpl()],
        workflows=[ImageWorkflow],
        state_dir=state_dir,
    )


class EngineThread:
    """Runs the Worker in a thread; `check()` raises DemoFailed once it has ended, with its
    error."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.stopping = False
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo worker", daemon=True)

    def start(self) -> EngineThread:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as error:
            self.error = error
        finally:
            self.ended.set()

    def check(self) -> None:
        if not self.ended.is_set() or self.stopping:
            return
        if self.error is None:
            raise DemoFailed("the engine and workers stopped unexpectedly (see the log above)")
        hint = ""
        if isinstance(self.error, StateDirLocked):
            hint = " Is another `make demo` or `make demo-engine` running? Stop it first."
        raise DemoFailed(
            f"the engine and workers stopped: {type(self.error).__name__}: {self.error}{hint}"
        )

    def partitions(self) -> int:
        app = self.worker.app
        return len(app.partitions_ready()) if app is not None else 0

    def stop(self) -> None:
        """Stop and wait (bounded; a second Ctrl-C exits at once)."""
        self.stopping = True
        self.worker.stop(timeout=0)
        self.thread.join(1.0)
        if self.thread.is_alive():
            say("Stopping the engine and workers (running tasks end first)...")
            self.thread.join(STOP_TIMEOUT_S)
        if self.thread.is_alive():
            say(f"The engine did not stop within {STOP_TIMEOUT_S:.0f} s: leaving it.")


def wait_for(what: str, call: Callable[[], T], timeout: float, engine: EngineThread) -> T:
    """Run `call` in a thread; wait for it while the engine runs, printing progress, at most
    `timeout` seconds."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=target, name=f"demo: {what}", daemon=True).start()
    started = time.monotonic()
    next_note = started + PROGRESS_EVERY_S
    while not done.wait(0.2):
        check_interrupted(STOPPED)
        engine.check()
        now = time.monotonic()
        if now - started > timeout:
            raise DemoFailed(f"{what}: nothing within {timeout:g} s (--timeout)")
        if now >= next_note:
            say(f"  ... still waiting for {what} ({now - started:.0f} s)")
            next_note += PROGRESS_EVERY_S
    error = outcome.get("error")
    if isinstance(error, TimeoutError):  # the client's own bound, under a longer --timeout
        raise DemoFailed(f"{what}: {error}")
    if error is not None:
        raise error
    return outcome["value"]  # type: ignore[no-any-return]


def wait_ready(engine: EngineThread, timeout: float) -> None:
    started = time.monotonic()
    next_note = started + PROGRESS_EVERY_S
    while engine.partitions() == 0:
        check_interrupted(STOPPED)
        engine.check()
        now = time.monotonic()
        if now - started > timeout:
            raise DemoFailed(
                f"the engine got no partition of {NAMESPACE}.engine within {timeout:g} s "
                "(--timeout): is another engine of this namespace holding them?"
            )
        if now >= next_note:
            say(f"  ... still waiting for the engine's partitions ({now - started:.0f} s)")
            next_note += PROGRESS_EVERY_S
        time.sleep(0.1)
    say(f"Engine: ready, {engine.partitions()} partitions, in {time.monotonic() - started:.1f} s")


# -- the demo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    name: str  # ImageWorkflow.<method>
    id: str


def run_demo(options: argparse.Namespace, kafka: DemoKafka, ran: list[Ran]) -> None:
    """Run both workflows, each added to `ran` once dispatched."""
    earlier = prepare_state(options.demo_dir, kafka)
    say(f"Engine and ImageUtil workers: starting, namespace {NAMESPACE!r}...")
    engine: EngineThread | None = None
    try:
        engine = EngineThread(demo_worker(kafka, options.demo_dir / "state")).start()
        wait_ready(engine, options.timeout)
        client = wait_for(
            "a client", lambda: InfiniticClient(kafka.settings, NAMESPACE), options.timeout, engine
        )
        with client:
            for workflow in earlier:
                show_earlier(client, workflow, engine, options.timeout)
            for method in (ImageWorkflow.run, ImageWorkflow.all_sizes):
                run_one(client, method, engine, options, ran)
        check_interrupted(STOPPED)  # e.g. while the client closed
    finally:
        if engine is not None:
            engine.stop()


def show_earlier(
    client: InfiniticClient, workflow: dict[str, str], engine: EngineThread, timeout: float
) -> None:
    name, id = workflow.get("name", "ImageWorkflow"), workflow.get("id", "")
    handle = client.get_workflow(ImageWorkflow, id)
    try:
        info = wait_for(f"the earlier {name} {id}", handle.describe, timeout, engine)
    except WorkflowNotFound:
        say(f"Earlier run: {name} {id}: not found (its state was lost)")
        return
    say(f"Earlier run: {name} {id}: {info.status}")


def run_one(
    client: InfiniticClient,
    method: Callable[..., list[str]],
    engine: EngineThread,
    options: argparse.Namespace,
    ran: list[Ran],
) -> None:
    """Dispatch, wait for the end, show the outcome; remembered at once for the next run."""
    name = f"ImageWorkflow.{method.__name__}"
    started = time.monotonic()
    handle = wait_for(
        f"Kafka to take {name}",
        lambda: client.dispatch(method, EMAIL, IMAGE_URL),
        options.timeout,
        engine,
    )
    say(f"\n{name}: dispatched, id {handle.id}")
    ran.append(Ran(name, handle.id))
    remember(options.demo_dir, [{"name": r.name, "id": r.id} for r in ran])
    try:
        urls = wait_for(f"{name} {handle.id} to end", handle.result, options.timeout, engine)
    except WorkflowFailed as error:
        raise DemoFailed(f"{name} {handle.id} failed: {error}") from None
    except DemoFailed as failure:
        raise DemoFailed(f"{failure}{where_it_stands(handle, engine)}") from None
    seconds = time.monotonic() - started
    info = wait_for(f"the description of {handle.id}", handle.describe, options.timeout, engine)
    history = wait_for(f"the history of {handle.id}", handle.history, options.timeout, engine)
    tasks = sum(1 for event in history if event["event"] == "TaskSucceeded")
    say(
        f"{name} {handle.id}: {info.status} in {seconds:.1f} s: {len(urls)} images resized and "
        f"saved ({tasks} tasks, {len(history)} events)"
    )
    for url in urls[:3]:
        say(f"  {url}")
    if len(urls) > 3:
        say(f"  ... and {len(urls) - 3} more")


def where_it_stands(handle: WorkflowHandle, engine: EngineThread) -> str:
    """What the engine says of a workflow that did not end in time, if it says it quickly."""
    try:
        info = wait_for("its description", handle.describe, 5.0, engine)
    except (DemoFailed, InfiniticError, TimeoutError) as error:
        return f"; the engine does not describe it either ({error})"
    pending = ", ".join(info.pending) or "nothing"
    return f"; the engine says: {info.status}, waiting for {pending}"


def print_commands(ran: list[Ran], kafka: DemoKafka, dashboard_port: int) -> None:
    target = f"--namespace {NAMESPACE} --bootstrap {shlex.quote(kafka.bootstrap)}"
    say(
        "\nLook at them again: the engine answers these, so run `make demo-engine` in another "
        "terminal first (Ctrl-C stops it)."
    )
    for workflow in ran:
        say(f"  {cli()} describe {workflow.id} {target}")
        say(f"  {cli()} history {workflow.id} {target}")
    dashboard = f"{cli()} dashboard {target}"
    if dashboard_port:
        say(
            "\nOr in a browser: `make demo-engine` serves the dashboard too, at "
            f"http://127.0.0.1:{dashboard_port}/ (alone, beside a running engine: {dashboard})."
        )
    else:
        say(f"\nOr in a browser, while an engine runs: {dashboard}")


def serve(options: argparse.Namespace, kafka: DemoKafka) -> None:
    """The demo's engine and workers in the foreground, until Ctrl-C or SIGTERM."""
    earlier = prepare_state(options.demo_dir, kafka)
    worker = demo_worker(kafka, options.demo_dir / "state")
    say(f"Engine and ImageUtil workers of namespace {NAMESPACE!r}: running, Ctrl-C stops them.")
    dashboard = start_dashboard(kafka, options.dashboard_port)
    if earlier:
        target = f"--namespace {NAMESPACE} --bootstrap {shlex.quote(kafka.bootstrap)}"
        say("The workflows of the last `make demo`, from another terminal:")
        for workflow in earlier:
            say(f"  {cli()} describe {workflow['id']} {target}")
    try:
        check_interrupted("Interrupted.")
        worker.run()  # in the main thread: SIGINT and SIGTERM stop it cleanly
    finally:
        if dashboard is not None:
            dashboard()
    say("Stopped.")


def start_dashboard(kafka: DemoKafka, port: int) -> Callable[[], None] | None:
    """Serve the dashboard of the demo's namespace on 127.0.0.1:port (0: none); the function
    that stops it."""
    if not port:
        return None
    backend = Backend(kafka.settings, NAMESPACE)
    try:
        server = DashboardServer(create_app(backend), "127.0.0.1", port).start()
    except (OSError, RuntimeError) as error:
        say(f"No dashboard: 127.0.0.1:{port} is taken ({error}); choose --dashboard-port.")
        return None
    say(f"Dashboard: {server.url}/ (the workflows of every run, their history, retry, cancel)")

    def stop() -> None:
        server.stop()
        backend.close()

    return stop


# -- entry point ------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    option = parser.add_argument
    option("--port", type=int, default=9092, help="where to start a broker (default: 9092)")
    option("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="the local broker's run dir")
    option("--demo-dir", type=Path, default=Path(".infinitic/demo"), help="the demo's state")
    option("--stop-kafka", action="store_true", help="stop the local broker at the end")
    option("--timeout", type=float, default=60.0, help="seconds for each step (default: 60)")
    option("--kafka-timeout", type=float, default=120.0, help="seconds for a broker to start")
    option("--serve", action="store_true", help="only run the engine and workers, until Ctrl-C")
    option("--dashboard-port", type=int, default=DASHBOARD_PORT, help="with --serve; 0: none")
    return parser.parse_args(argv)


class OneLine(logging.Formatter):
    """Log lines without tracebacks: the demo says what failed and why in its own words."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        return self.formatMessage(record)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGINT, on_sigint)
    handler = logging.StreamHandler()
    handler.setFormatter(OneLine("  [%(levelname)s %(name)s] %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # A fresh broker answers "coordinator loading" for a few seconds: retried, not news.
    logging.getLogger("infinitic_streams.kafka.librdkafka").setLevel(logging.ERROR)
    kafka: DemoKafka | None = None
    ran: list[Ran] = []
    code = 0
    try:
        kafka = find_kafka(options)
        if options.serve:
            serve(options, kafka)
        else:
            run_demo(options, kafka, ran)
    except DemoFailed as failure:
        say(f"\nThe demo failed: {failure}")
        code = 1
    except InfiniticError as error:  # Kafka refused something the client asked
        say(f"\nThe demo failed: {type(error).__name__}: {error}")
        code = 1
    except DemoInterrupted as interrupted:
        say(f"\n{interrupted}")
        code = 130
    if kafka is None:
        return code
    if ran and not (options.stop_kafka and kafka.run_dir is not None):
        # After a failure too: they show what went wrong.
        print_commands(ran, kafka, options.dashboard_port)
    finish_kafka(options, kafka)
    return 130 if INTERRUPTED.is_set() else code
