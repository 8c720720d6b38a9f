"""`<run_dir>/cluster.json`: what `up` started, kept up to date by `start-node`.

The record is the only link between the commands (`up`, `status`, `stop-node`, ...) and the
node processes, which outlive the command that started them. It is written atomically (a reader
never sees half a file) and holds the client settings, with the SASL password of a `sasl`
cluster, so it is readable by its owner only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from infinitic_streams.local_kafka.config import Node

RECORD_FILE = "cluster.json"
LOCK_FILE = ".cluster.lock"


@dataclass
class NodeProcess:
    """One node as started: its latest pid, its ports, and its log (beside its data)."""

    node_id: int
    pid: int
    port: int
    controller_port: int
    log_file: str

    @property
    def node(self) -> Node:
        """The node's files and ports, as `config.plan_nodes` laid them out."""
        return Node(self.node_id, self.port, self.controller_port, Path(self.log_file).parent)


@dataclass
class ClusterRecord:
    """What `up` started, as saved in `<run_dir>/cluster.json`."""

    bootstrap: str
    kafka_version: str
    cluster_id: str
    started_at: float
    ready_seconds: float | None
    nodes: list[NodeProcess]
    security: str = "plaintext"
    # The librdkafka settings a client needs: bootstrap servers, and SASL ones if any.
    client_settings: dict[str, str] = field(default_factory=dict)
    # Where the broker's jars are, so that `start-node` runs the same ones.
    libs_dir: str = ""

    def __post_init__(self) -> None:
        if not self.client_settings:  # a record written before client settings were kept
            self.client_settings = {"bootstrap.servers": self.bootstrap}

    def node(self, node_id: int) -> NodeProcess | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def save(self, run_dir: Path) -> None:
        """Write the record atomically, readable by its owner only (it may hold a password)."""
        path = run_dir / RECORD_FILE
        staged = path.with_name(f".{RECORD_FILE}.{os.getpid()}")
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(json.dumps(asdict(self), indent=2) + "\n")
        staged.replace(path)

    @classmethod
    def load(cls, run_dir: Path) -> ClusterRecord | None:
        """The record of `run_dir`, or None when there is none (or it is unreadable)."""
        try:
            raw: dict[str, Any] = json.loads((run_dir / RECORD_FILE).read_text())
            nodes = [NodeProcess(**node) for node in raw.pop("nodes")]
            known = {f.name for f in fields(cls)}
            return cls(nodes=nodes, **{k: v for k, v in raw.items() if k in known})
        except (OSError, ValueError, TypeError, KeyError):
            return None


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Serialize read-modify-write of the record between commands run at the same time."""
    with open(run_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def record_pid(run_dir: Path, node_id: int, pid: int) -> bool:
    """Record the new pid of a restarted node, keeping what others changed meanwhile; False
    when the cluster is no longer recorded (a `down` ran in between)."""
    with locked(run_dir):
        record = ClusterRecord.load(run_dir)
        entry = record.node(node_id) if record is not None else None
        if record is None or entry is None:
            return False
        entry.pid = pid
        record.save(run_dir)
        return True
