"""KRaft configuration of a local cluster: one or three combined broker+controller nodes."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Node:
    """One broker+controller process of the local cluster."""

    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.directory / "log4j2.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    @property
    def stdout_file(self) -> Path:
        return self.directory / "stdout.log"


def plan_nodes(run_dir: Path, count: int, port: int, controller_port: int) -> list[Node]:
    """Nodes with consecutive ports: brokers on `port + i`, controllers on `controller_port + i`."""
    return [
        Node(i + 1, port + i, controller_port + i, run_dir / f"node-{i + 1}") for i in range(count)
    ]


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding: the form `kafka-storage` expects."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def server_properties(node: Node, nodes: list[Node]) -> str:
    """The broker configuration of `node`, with defaults that work on one small machine."""
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)
    replicas = min(len(nodes), 3)
    min_isr = 2 if replicas == 3 else 1
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": node.data_dir,
        # Kafka's defaults want three replicas for internal topics; transactions would fail.
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        # Few internal partitions: creating fifty of them slows the first group or transaction.
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.num.partitions": 4,
        "group.initial.rebalance.delay.ms": 0,
        # Topics are created on purpose by the project; a typo must not create one silently.
        "auto.create.topics.enable": "false",
        # Avoids a 128 MiB buffer allocation per node (Kafka's own test clusters do the same).
        "log.cleaner.dedupe.buffer.size": 2097152,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def log4j_properties(log_file: Path) -> str:
    """Log to `log_file` at INFO, as the release scripts do (without the console noise)."""
    return f"""status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state_change.name = state.change.logger
logger.state_change.level = WARN
"""
