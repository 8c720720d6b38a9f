"""Stop and start single nodes of the local cluster, keeping their data: fault drills.

A stopped node keeps its data directory, configuration and logs; starting it again runs it
from its recorded `server.properties`, so it rejoins the cluster with the partitions it held
and catches up from the other replicas. The KRaft quorum needs a majority of its voters (1 of
1, 2 of 3): a node that would run without one is refused before it starts, rather than left
waiting for a quorum that never comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from infinitic_streams.local_kafka.processes import (
    READY_TIMEOUT,
    Log,
    accepts,
    check_ports_free,
    is_running,
    spawn,
    stop_processes,
    wait_serving,
)
from infinitic_streams.local_kafka.provision import (
    LocalKafkaError,
    check_java,
    default_cache_dir,
    ensure_jars,
    java_command,
)
from infinitic_streams.local_kafka.record import ClusterRecord, NodeProcess, record_pid

CLI = "infinitic-streams kafka"


def stop_node(run_dir: Path, node_id: int, kill: bool = False, log: Log = print) -> NodeProcess:
    """Stop node `node_id`, keeping its data: SIGTERM and wait for it to exit (SIGKILL after a
    bound), or SIGKILL at once with `kill`. Return the node as it was recorded."""
    record = _load(run_dir)
    entry = _entry(record, run_dir, node_id)
    if not is_running(entry.pid, entry.node):
        raise LocalKafkaError(
            f"Kafka node {node_id} of {record.bootstrap} is already stopped. "
            f"Start it again with `{CLI} start-node {node_id}`."
        )
    how = "Killing (SIGKILL)" if kill else "Stopping (SIGTERM)"
    log(f"{how} Kafka node {node_id} (pid {entry.pid})...")
    stop_processes([entry.pid], kill, log)
    log(
        f"Kafka node {node_id} stopped; its data is kept in {entry.node.data_dir}. "
        f"Start it again with `{CLI} start-node {node_id}`."
    )
    running = [n for n in record.nodes if n.node_id != node_id and is_running(n.pid, n.node)]
    if len(record.nodes) > 1 and len(running) < _majority(record):
        log(
            f"Only {len(running)} of {len(record.nodes)} nodes run now: without a quorum the "
            "cluster serves nothing until enough nodes start again."
        )
    return entry


def start_node(
    run_dir: Path, node_id: int, log: Log = print, timeout: float = READY_TIMEOUT
) -> NodeProcess:
    """Start stopped node `node_id` again with its kept data and wait until it serves (its
    broker port accepts and the cluster lists it). Return the node with its new pid."""
    return start_nodes(run_dir, [node_id], log, timeout)[0]


def start_nodes(
    run_dir: Path, node_ids: Sequence[int], log: Log = print, timeout: float = READY_TIMEOUT
) -> list[NodeProcess]:
    """Start stopped nodes together (a quorum lost with two of three nodes needs both back at
    once), record their new pids, and wait up to `timeout` until all serve. Nodes that do not
    are killed again (their data is still kept) and the error shows the end of a log."""
    record = _load(run_dir)
    entries = [_entry(record, run_dir, node_id) for node_id in dict.fromkeys(node_ids)]
    for entry in entries:
        _check_startable(record, entry)
    _check_quorum(record, entries)
    check_ports_free([entry.node for entry in entries])
    java = java_command()
    check_java(java)
    classpath = f"{_libs(record, log)}/*"

    names = ", ".join(str(entry.node_id) for entry in entries)
    log(f"Starting Kafka node(s) {names} with their kept data...")
    processes = [spawn(java, classpath, entry.node) for entry in entries]
    started = [replace(e, pid=p.pid) for e, p in zip(entries, processes, strict=True)]
    if not all([record_pid(run_dir, e.node_id, e.pid) for e in started]):
        stop_processes([e.pid for e in started], True, log)
        raise LocalKafkaError(
            f"The local cluster of {run_dir} was stopped meanwhile (`{CLI} down`): "
            f"node(s) {names} not started. Start a fresh cluster with `{CLI} up`."
        )
    try:
        wait_serving([e.node for e in started], processes, record.client_settings, timeout)
    except LocalKafkaError as error:
        stop_processes([e.pid for e in started], True, lambda _: None)
        raise LocalKafkaError(f"{error}\nNode(s) {names} were stopped again.") from None
    log(f"Kafka node(s) {names} serve again at {record.bootstrap}.")
    return started


def _load(run_dir: Path) -> ClusterRecord:
    record = ClusterRecord.load(run_dir)
    if record is None:
        raise LocalKafkaError(
            f"No local Kafka is recorded in {run_dir}. Start one with `{CLI} up`, or pass the "
            "--run-dir it was started with."
        )
    return record


def _entry(record: ClusterRecord, run_dir: Path, node_id: int) -> NodeProcess:
    entry = record.node(node_id)
    if entry is None:
        known = ", ".join(str(n.node_id) for n in record.nodes)
        raise LocalKafkaError(
            f"The local cluster of {run_dir} has no node {node_id}: its node(s) are {known}."
        )
    return entry


def _check_startable(record: ClusterRecord, entry: NodeProcess) -> None:
    node = entry.node
    if is_running(entry.pid, node):
        starting = "" if accepts(node.port) else f", not serving yet (see {node.log_file})"
        raise LocalKafkaError(
            f"Kafka node {entry.node_id} of {record.bootstrap} already runs (pid {entry.pid}"
            f"{starting}). To restart it, stop it first with `{CLI} stop-node {entry.node_id}`."
        )
    if not (node.data_dir / "meta.properties").exists():
        raise LocalKafkaError(
            f"Kafka node {entry.node_id} has no formatted data in {node.data_dir}, so it cannot "
            f"rejoin its cluster. Start a fresh cluster with `{CLI} down` then `{CLI} up`."
        )


def _check_quorum(record: ClusterRecord, starting: list[NodeProcess]) -> None:
    """Refuse to start nodes that could not reach a KRaft quorum with those already running."""
    ids = {e.node_id for e in starting}
    running = [n for n in record.nodes if n.node_id not in ids and is_running(n.pid, n.node)]
    if len(running) + len(starting) >= _majority(record):
        return
    stopped = [str(n.node_id) for n in record.nodes if n not in running]
    raise LocalKafkaError(
        f"Only {len(running) + len(starting)} of {len(record.nodes)} nodes would run, and the "
        f"KRaft quorum needs {_majority(record)}: the node(s) would wait forever. Start "
        f"several at once, e.g. `{CLI} start-node {' '.join(stopped)}`."
    )


def _majority(record: ClusterRecord) -> int:
    return len(record.nodes) // 2 + 1


def _libs(record: ClusterRecord, log: Log) -> Path:
    """The jars the cluster was started with; the default cache when they are gone."""
    libs = Path(record.libs_dir) if record.libs_dir else None
    if libs is not None and (libs / ".complete").exists():
        return libs
    return ensure_jars(default_cache_dir(), log)
