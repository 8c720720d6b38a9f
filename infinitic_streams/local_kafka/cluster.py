"""Start, inspect and stop a local Kafka cluster whose processes are recorded in a run directory.

The run directory holds `cluster.json` (pids, ports, log files, client settings) and one folder
per node with its configuration, data and logs. Every `up` formats fresh data directories and
`down` deletes them: the local cluster is for development and tests, never for data that must
outlive it. Stopping and starting one node (`nodes.stop_node`, `nodes.start_node`, re-exported
here) keeps its data, for fault drills.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infinitic_streams.local_kafka.config import (
    Node,
    Security,
    log4j_properties,
    new_cluster_id,
    plan_nodes,
    server_properties,
)
from infinitic_streams.local_kafka.nodes import start_node, stop_node
from infinitic_streams.local_kafka.processes import (
    READY_TIMEOUT,
    Log,
    accepts,
    check_ports_free,
    is_running,
    java_base,
    spawn,
    stop_processes,
    wait_serving,
)
from infinitic_streams.local_kafka.provision import (
    KAFKA_VERSION,
    LocalKafkaError,
    check_java,
    ensure_jars,
    java_command,
)
from infinitic_streams.local_kafka.record import RECORD_FILE, ClusterRecord, NodeProcess, locked

__all__ = [
    "DEFAULT_PORT",
    "READY_TIMEOUT",
    "ClusterRecord",
    "ClusterStatus",
    "NodeProcess",
    "down",
    "start_node",
    "status",
    "stop_node",
    "up",
]

DEFAULT_PORT = 9092


@dataclass(frozen=True)
class ClusterStatus:
    """`up` when every recorded node runs and accepts connections; `down` when none does."""

    state: str  # "up", "degraded" or "down"
    record: ClusterRecord | None
    running_nodes: list[int]

    @property
    def stopped_nodes(self) -> list[int]:
        nodes = self.record.nodes if self.record is not None else []
        return [n.node_id for n in nodes if n.node_id not in self.running_nodes]


def status(run_dir: Path) -> ClusterStatus:
    record = ClusterRecord.load(run_dir)
    if record is None:
        return ClusterStatus("down", None, [])
    running = [n.node_id for n in record.nodes if is_running(n.pid, n.node) and accepts(n.port)]
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
    security: Security | None = None,
    timeout: float = READY_TIMEOUT,
    stop: Callable[[], bool] | None = None,
) -> ClusterRecord:
    """Start a local cluster of `nodes` broker+controller nodes and wait until it serves.

    1. If the cluster recorded in `run_dir` already runs with the same shape and security,
       return it. Leftovers of a cluster that died (e.g. `kill -9`), or is only partly running,
       are stopped and cleared.
    2. Check Java, free ports, and the jars (downloaded once into `cache_dir`).
    3. Write each node's configuration and format a fresh data directory (with the SCRAM
       user of a `sasl` cluster).
    4. Start the nodes as their own session (they outlive this process) and record their pids.
    5. Wait until every broker port accepts connections and the cluster lists all brokers;
       on an early exit or after `timeout` seconds, kill what was started and raise with the
       end of the log. Interrupted (Ctrl-C) once nodes run, kill them too: an `up` that does
       not return leaves nothing running.

    `stop`, polled while formatting and waiting, asks to give up (as Ctrl-C does, for a caller
    that handles SIGINT itself): what was started is killed, and LocalKafkaError raised.
    """
    security = security or Security()
    current = status(run_dir)
    if current.state == "up" and current.record is not None:
        _check_same(current.record, run_dir, nodes, port, security)
        log(f"Kafka is already up at {current.record.bootstrap} ({run_dir}).")
        return current.record
    if current.record is not None:
        if current.state == "degraded":
            stopped = current.stopped_nodes
            log(f"Node(s) {stopped} of the local cluster are stopped: clearing it for a fresh one.")
        else:
            log("Clearing a local cluster that is no longer running...")
        _stop(run_dir, current.record, log)

    java = java_command()
    check_java(java)
    plan = plan_nodes(run_dir, nodes, port, controller_port or port + 100)
    check_ports_free(plan)
    libs = ensure_jars(cache_dir, log)
    classpath = f"{libs}/*"

    security = security.with_password()
    cluster_id = new_cluster_id()
    for node in plan:
        _check_stop(stop)
        _prepare_node(java, classpath, node, plan, cluster_id, security)
    _check_stop(stop)

    log(f"Starting Kafka {KAFKA_VERSION} ({nodes} node{'s' if nodes > 1 else ''})...")
    started_at = time.time()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for node in plan:
            processes.append(spawn(java, classpath, node))
        record = _record_started(run_dir, plan, processes, cluster_id, started_at, security, libs)
        wait_serving(plan, processes, record.client_settings, timeout, stop)
    except BaseException:  # an early exit, a timeout, or Ctrl-C (KeyboardInterrupt) meanwhile
        _abandon(run_dir, plan, processes)
        raise
    record.ready_seconds = round(time.time() - started_at, 2)
    record.save(run_dir)
    log(f"Kafka is up at {record.bootstrap} (ready in {record.ready_seconds:.1f} s).")
    return record


def _check_stop(stop: Callable[[], bool] | None) -> None:
    if stop is not None and stop():
        raise LocalKafkaError("Stopped before Kafka started: nothing was left running.")


def _record_started(
    run_dir: Path,
    plan: list[Node],
    processes: list[subprocess.Popen[bytes]],
    cluster_id: str,
    started_at: float,
    security: Security,
    libs: Path,
) -> ClusterRecord:
    """Save what `up` just started, before waiting for it: other commands find it meanwhile."""
    bootstrap = ",".join(node.address for node in plan)
    record = ClusterRecord(
        bootstrap=bootstrap,
        kafka_version=KAFKA_VERSION,
        cluster_id=cluster_id,
        started_at=started_at,
        ready_seconds=None,
        nodes=[
            NodeProcess(n.node_id, p.pid, n.port, n.controller_port, str(n.log_file))
            for n, p in zip(plan, processes, strict=True)
        ],
        security=security.mode,
        client_settings=security.client_settings(bootstrap),
        libs_dir=str(libs),
    )
    record.save(run_dir)
    return record


def _abandon(run_dir: Path, plan: list[Node], processes: list[subprocess.Popen[bytes]]) -> None:
    """Undo an `up` that did not finish: SIGKILL the nodes it started (a node still starting
    has nothing to hand over, and its fresh data is deleted anyway), delete their data and the
    record. Pids come from the processes themselves, recorded or not yet."""
    stop_processes([p.pid for p in processes], True, lambda _: None)
    with locked(run_dir):
        for node in plan:
            shutil.rmtree(node.data_dir, ignore_errors=True)
        (run_dir / RECORD_FILE).unlink(missing_ok=True)


def down(run_dir: Path, log: Log = print) -> bool:
    """Stop the cluster recorded in `run_dir`; return False when there was nothing to stop."""
    record = ClusterRecord.load(run_dir)
    if record is None:
        log(f"No local Kafka recorded in {run_dir}: nothing to stop.")
        return False
    _stop(run_dir, record, log)
    log(f"Kafka at {record.bootstrap} stopped.")
    return True


def _check_same(
    record: ClusterRecord, run_dir: Path, nodes: int, port: int, security: Security
) -> None:
    """Raise unless the running cluster is the one asked for: its shape and its security
    (the user, and the password when one was given)."""
    settings = record.client_settings
    differs = []
    if len(record.nodes) != nodes or record.nodes[0].port != port:
        differs.append(f"{len(record.nodes)} node(s) on port {record.nodes[0].port}")
    if record.security != security.mode:
        differs.append(f"security {record.security}")
    elif security.mode == "sasl" and settings.get("sasl.username") != security.user:
        differs.append(f"SASL user {settings.get('sasl.username')}")
    elif security.password and settings.get("sasl.password") != security.password:
        differs.append("another SASL password")
    if differs:
        raise LocalKafkaError(
            f"A local cluster with {' and '.join(differs)} already runs at {record.bootstrap} "
            f"from {run_dir}. Stop it first with `infinitic-streams kafka down`."
        )


def _prepare_node(
    java: str, classpath: str, node: Node, plan: list[Node], cluster_id: str, security: Security
) -> None:
    """A fresh node directory: configuration (owner-only: it may hold the SASL password),
    logging configuration, and a data directory formatted with the cluster id."""
    if node.directory.exists():
        shutil.rmtree(node.directory)
    node.data_dir.mkdir(parents=True)
    node.properties_file.touch(mode=0o600)
    node.properties_file.write_text(server_properties(node, plan, security))
    node.log4j_file.write_text(log4j_properties(node.log_file))
    command = [
        *java_base(java, classpath, node, tool=True), "kafka.tools.StorageTool", "format",
        f"--cluster-id={cluster_id}", "-c", str(node.properties_file),
        *security.format_arguments(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalKafkaError(
            f"Formatting the data directory of node {node.node_id} failed "
            f"(exit code {done.returncode}):\n{(done.stdout + done.stderr).strip()[-2000:]}"
        )


def _stop(run_dir: Path, record: ClusterRecord, log: Log) -> None:
    """SIGTERM every live node, SIGKILL the ones still alive after a bound, then delete their
    data and the record."""
    stop_processes([n.pid for n in record.nodes if is_running(n.pid, n.node)], False, log)
    with locked(run_dir):
        for node in record.nodes:
            shutil.rmtree(node.node.data_dir, ignore_errors=True)
        (run_dir / RECORD_FILE).unlink(missing_ok=True)
