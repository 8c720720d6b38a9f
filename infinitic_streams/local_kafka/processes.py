"""The node processes: spawn them, tell whether they run, signal them, wait until they serve.

Nodes run in their own session, so they outlive the command that started them; every later
command knows them only by the pid recorded in `cluster.json`, checked against `/proc` so that
a recycled pid is never taken for (or signalled as) a node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import describe_cluster
from infinitic_streams.local_kafka.config import HOST, Node
from infinitic_streams.local_kafka.provision import LocalKafkaError

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
KILL_TIMEOUT = 10.0  # for the kernel to end a SIGKILLed process
JVM_OPTIONS = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
# For the tools that run a few seconds (formatting a data directory): no optimizing JIT and no
# concurrent GC threads, which on a 2-core machine only slow their start (measured: 3 times).
TOOL_JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]

Log = Callable[[str], None]


def java_base(java: str, classpath: str, node: Node, tool: bool = False) -> list[str]:
    """`java` with the node's JVM options (a short-lived tool's with `tool`), logging
    configuration and the broker's jars."""
    options = TOOL_JVM_OPTIONS if tool else JVM_OPTIONS
    return [
        java, *options, f"-Dlog4j2.configurationFile={node.log4j_file}", "-cp", classpath,
    ]  # fmt: skip


def spawn(java: str, classpath: str, node: Node) -> subprocess.Popen[bytes]:
    """Start the node in a session of its own; its console output is appended to stdout.log
    (kept across restarts of the node, as broker.log is)."""
    command = [*java_base(java, classpath, node), "kafka.Kafka", str(node.properties_file)]
    with open(node.stdout_file, "ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def is_running(pid: int, node: Node | None = None) -> bool:
    """True if `pid` is a live (not zombie) Kafka broker, and `node`'s one when given: a pid
    recycled by another process, or by a node of another cluster, does not count."""
    if not Path("/proc/self").exists():  # no /proc (e.g. macOS): trust the pid alone
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if state == "Z" or b"kafka.Kafka" not in cmdline:
        return False
    return node is None or str(node.properties_file).encode() in cmdline


def stop_processes(pids: list[int], kill: bool, log: Log) -> None:
    """SIGTERM the processes (a clean shutdown: a broker hands over its leaderships) and wait
    up to STOP_TIMEOUT, then SIGKILL those still alive; or SIGKILL at once when `kill`.
    Return once all are gone; raise if one outlives even SIGKILL."""
    alive = [pid for pid in pids if is_running(pid)]
    if not kill:
        for pid in alive:
            _signal(pid, signal.SIGTERM)
        alive = _wait_gone(alive, STOP_TIMEOUT)
        for pid in alive:
            log(f"Kafka process {pid} did not stop within {STOP_TIMEOUT:.0f} s: killing it.")
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    alive = _wait_gone(alive, KILL_TIMEOUT)
    for pid in pids:
        _reap(pid)
    if alive:
        raise LocalKafkaError(
            f"Kafka process(es) {alive} still run {KILL_TIMEOUT:.0f} s after SIGKILL. "
            "Look at them with `ps -o pid,stat,args -p PID`."
        )


def wait_serving(
    nodes: list[Node],
    processes: list[subprocess.Popen[bytes]],
    settings: Mapping[str, str],
    timeout: float = READY_TIMEOUT,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Wait until every node's broker port accepts and the cluster lists all of them.

    The broker port opens only once the broker is unfenced: a sound readiness signal, checked
    against the cluster's own broker list (through `settings`, SASL included). A node that
    exits meanwhile, or a timeout, raises with the end of its log; `stop()` turning true
    raises too (the caller kills the nodes)."""
    deadline = time.monotonic() + timeout
    last_answer = "no broker port accepted connections yet"
    while time.monotonic() < deadline:
        if stop is not None and stop():
            raise LocalKafkaError("Stopped while Kafka was starting.")
        for node, process in zip(nodes, processes, strict=True):
            if process.poll() is not None:
                raise LocalKafkaError(
                    f"Kafka node {node.node_id} exited early (exit code {process.returncode}). "
                    f"End of its logs ({node.log_file}):\n{node_logs(node)}"
                )
        if all(accepts(node.port) for node in nodes):
            try:
                listed = {b.node_id for b in describe_cluster(settings, timeout=2.0).brokers}
            except InfiniticError as error:  # not answering yet, or not authenticating yet
                last_answer = str(error)
            else:
                if {node.node_id for node in nodes} <= listed:
                    return
                last_answer = f"the cluster lists brokers {sorted(listed)}"
        time.sleep(0.1)
    first = nodes[0]
    raise LocalKafkaError(
        f"Kafka node(s) {[n.node_id for n in nodes]} did not become ready within {timeout:.0f} s "
        f"(last: {last_answer}). End of node {first.node_id}'s logs ({first.log_file}):\n"
        f"{node_logs(first)}"
    )


def check_ports_free(nodes: list[Node]) -> None:
    """Raise, naming the port and the fixes, if a node's broker or controller port is taken."""
    for node in nodes:
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


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(log_file: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def node_logs(node: Node) -> str:
    return f"{log_tail(node.log_file)}\n--- stdout/stderr ---\n{log_tail(node.stdout_file, 15)}"


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to `timeout` for the processes to end; return those still running."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if is_running(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        for pid in alive:
            _reap(pid)  # our own child only ends once reaped, when /proc is absent
        alive = [pid for pid in alive if is_running(pid)]
    return alive


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the node is our own child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
