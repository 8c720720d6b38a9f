"""Start, inspect and stop a local Kafka cluster whose processes are recorded in a run directory.

The run directory holds `cluster.json` (pids, ports, log files) and one folder per node with its
configuration, data and logs. Every `up` formats fresh data directories: the local cluster is for
development and tests, never for data that must outlive it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from infinitic_streams.kafka.admin import describe_cluster
from infinitic_streams.local_kafka.config import (
    HOST,
    Node,
    log4j_properties,
    new_cluster_id,
    plan_nodes,
    server_properties,
)
from infinitic_streams.local_kafka.provision import (
    KAFKA_VERSION,
    LocalKafkaError,
    check_java,
    ensure_jars,
    java_command,
)

DEFAULT_PORT = 9092
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
JVM_OPTIONS = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
RECORD_FILE = "cluster.json"

Log = Callable[[str], None]


@dataclass
class NodeProcess:
    node_id: int
    pid: int
    port: int
    controller_port: int
    log_file: str


@dataclass
class ClusterRecord:
    """What `up` started, as saved in `<run_dir>/cluster.json`."""

    bootstrap: str
    kafka_version: str
    cluster_id: str
    started_at: float
    ready_seconds: float | None
    nodes: list[NodeProcess]

    def save(self, run_dir: Path) -> None:
        (run_dir / RECORD_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> ClusterRecord | None:
        try:
            raw = json.loads((run_dir / RECORD_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        nodes = [NodeProcess(**node) for node in raw.pop("nodes")]
        return cls(nodes=nodes, **raw)


@dataclass(frozen=True)
class ClusterStatus:
    """`up` when every recorded node runs and accepts connections; `down` when none does."""

    state: str  # "up", "degraded" or "down"
    record: ClusterRecord | None
    running_nodes: list[int]


def status(run_dir: Path) -> ClusterStatus:
    record = ClusterRecord.load(run_dir)
    if record is None:
        return ClusterStatus("down", None, [])
    running = [n.node_id for n in record.nodes if _is_broker(n.pid) and _accepts(n.port)]
    if len(running) == len(record.nodes):
        return ClusterStatus("up", record, running)
    return ClusterStatus("degraded" if running else "down", record, running)


def up(
    run_dir: Path,
    cache_dir: Path,
    nodes: int = 1,
    port: int = DEFAULT_PORT,
    controller_port: int | None = None,
    log: Log = print,
) -> ClusterRecord:
    """Start a local cluster of `nodes` broker+controller nodes and wait until it serves.

    1. If the cluster recorded in `run_dir` already runs with the same shape, return it.
       Leftovers of a cluster that died (e.g. `kill -9`) are stopped and cleared.
    2. Check Java, free ports, and the jars (downloaded once into `cache_dir`).
    3. Write each node's configuration and format a fresh data directory.
    4. Start the nodes as their own session (they outlive this process) and record their pids.
    5. Wait until every broker port accepts connections and the cluster lists all brokers;
       on an early exit or a timeout, stop everything and raise with the end of the log.
    """
    current = status(run_dir)
    if current.state == "up" and current.record is not None:
        record = current.record
        if len(record.nodes) == nodes and record.nodes[0].port == port:
            log(f"Kafka is already up at {record.bootstrap} ({run_dir}).")
            return record
        raise LocalKafkaError(
            f"A local cluster of {len(record.nodes)} node(s) already runs at {record.bootstrap} "
            f"from {run_dir}. Stop it first with `infinitic-streams kafka down`."
        )
    if current.record is not None:
        log("Clearing a local cluster that is no longer running...")
        _stop(run_dir, current.record, log)

    java = java_command()
    check_java(java)
    plan = plan_nodes(run_dir, nodes, port, controller_port or port + 100)
    _check_ports_free(plan)
    libs = ensure_jars(cache_dir, log)
    classpath = f"{libs}/*"

    cluster_id = new_cluster_id()
    for node in plan:
        _prepare_node(java, classpath, node, plan, cluster_id)

    log(f"Starting Kafka {KAFKA_VERSION} ({nodes} node{'s' if nodes > 1 else ''})...")
    started_at = time.time()
    processes = [_spawn(java, classpath, node) for node in plan]
    record = ClusterRecord(
        bootstrap=",".join(node.address for node in plan),
        kafka_version=KAFKA_VERSION,
        cluster_id=cluster_id,
        started_at=started_at,
        ready_seconds=None,
        nodes=[
            NodeProcess(n.node_id, p.pid, n.port, n.controller_port, str(n.log_file))
            for n, p in zip(plan, processes, strict=True)
        ],
    )
    record.save(run_dir)
    try:
        _wait_ready(plan, processes, record.bootstrap)
    except LocalKafkaError:
        _stop(run_dir, record, lambda _: None)
        raise
    record.ready_seconds = round(time.time() - started_at, 2)
    record.save(run_dir)
    log(f"Kafka is up at {record.bootstrap} (ready in {record.ready_seconds:.1f} s).")
    return record


def down(run_dir: Path, log: Log = print) -> bool:
    """Stop the cluster recorded in `run_dir`; return False when there was nothing to stop."""
    record = ClusterRecord.load(run_dir)
    if record is None:
        log(f"No local Kafka recorded in {run_dir}: nothing to stop.")
        return False
    _stop(run_dir, record, log)
    log(f"Kafka at {record.bootstrap} stopped.")
    return True


def log_tail(log_file: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def _prepare_node(java: str, classpath: str, node: Node, plan: list[Node], cluster_id: str) -> None:
    if node.directory.exists():
        shutil.rmtree(node.directory)
    node.data_dir.mkdir(parents=True)
    node.properties_file.write_text(server_properties(node, plan))
    node.log4j_file.write_text(log4j_properties(node.log_file))
    command = [
        java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={node.log4j_file}", "-cp", classpath,
        "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
        "-c", str(node.properties_file),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalKafkaError(
            f"Formatting the data directory of node {node.node_id} failed "
            f"(exit code {done.returncode}):\n{(done.stdout + done.stderr).strip()[-2000:]}"
        )


def _spawn(java: str, classpath: str, node: Node) -> subprocess.Popen[bytes]:
    command = [
        java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={node.log4j_file}", "-cp", classpath,
        "kafka.Kafka", str(node.properties_file),
    ]  # fmt: skip
    with open(node.stdout_file, "wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def _wait_ready(plan: list[Node], processes: list[subprocess.Popen[bytes]], bootstrap: str) -> None:
    """The broker port opens only once the broker is unfenced: a sound readiness signal."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for node, process in zip(plan, processes, strict=True):
            if process.poll() is not None:
                raise LocalKafkaError(
                    f"Kafka node {node.node_id} exited early (exit code {process.returncode}). "
                    f"End of its logs ({node.log_file}):\n{_node_logs(node)}"
                )
        if all(_accepts(node.port) for node in plan):
            try:
                if len(describe_cluster(bootstrap, timeout=2.0).brokers) == len(plan):
                    return
            except KafkaException:  # not answering yet
                pass
        time.sleep(0.1)
    raise LocalKafkaError(
        f"Kafka did not become ready within {READY_TIMEOUT:.0f} s. "
        f"End of node 1's logs ({plan[0].log_file}):\n{_node_logs(plan[0])}"
    )


def _node_logs(node: Node) -> str:
    return f"{log_tail(node.log_file)}\n--- stdout/stderr ---\n{log_tail(node.stdout_file, 15)}"


def _check_ports_free(plan: list[Node]) -> None:
    for node in plan:
        for port in (node.port, node.controller_port):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # As Kafka does: connections of a killed broker in TIME_WAIT must not count.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((HOST, port))
                except OSError:
                    raise LocalKafkaError(
                        f"Port {port} on {HOST} is already in use, so Kafka node {node.node_id} "
                        "cannot listen on it. Stop what uses it, choose other ports with --port "
                        "(brokers use port+i, controllers port+100+i), or point INFINITIC_KAFKA "
                        "at the Kafka that may already run there."
                    ) from None


def _stop(run_dir: Path, record: ClusterRecord, log: Log) -> None:
    """SIGTERM every live node, SIGKILL the ones still alive after STOP_TIMEOUT, then clear."""
    alive = [n.pid for n in record.nodes if _is_broker(n.pid)]
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _is_broker(pid)]
    for pid in alive:
        log(f"Kafka process {pid} did not stop within {STOP_TIMEOUT:.0f} s: killing it.")
        _signal(pid, signal.SIGKILL)
    for node in record.nodes:
        _reap(node.pid)
        shutil.rmtree(Path(node.log_file).parent / "data", ignore_errors=True)
    (run_dir / RECORD_FILE).unlink(missing_ok=True)


def _is_broker(pid: int) -> bool:
    """True if `pid` is a live (not zombie) Kafka broker process, not a recycled pid."""
    if not Path("/proc/self").exists():  # no /proc (e.g. macOS): trust the pid alone
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and b"kafka.Kafka" in cmdline


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the node is our own child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False
