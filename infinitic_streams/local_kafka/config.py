"""KRaft configuration of a local cluster: one or three combined broker+controller nodes,
reached by clients over PLAINTEXT or SASL_PLAINTEXT with SCRAM-SHA-512."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from infinitic_streams.local_kafka.provision import LocalKafkaError

HOST = "127.0.0.1"
SECURITY_MODES = ("plaintext", "sasl")
SCRAM_MECHANISM = "SCRAM-SHA-512"
DEFAULT_USER = "infinitic"
# Characters that need no quoting in a JAAS line, in `--add-scram`, in SCRAM and in TOML.
_SAFE_SECRET = re.compile(r"[A-Za-z0-9._~@+-]+")


@dataclass(frozen=True)
class Security:
    """How clients (and brokers between themselves) connect: no authentication at all
    (`plaintext`), or SASL_PLAINTEXT with one SCRAM-SHA-512 user (`sasl`). The controller
    listener stays PLAINTEXT: only the nodes themselves use it."""

    mode: str = "plaintext"
    user: str = DEFAULT_USER
    password: str = ""

    @classmethod
    def of(cls, mode: str, user: str | None = None, password: str | None = None) -> Security:
        """Check the choice. A `sasl` mode without a password gets a random one when a fresh
        cluster is formatted (`with_password`)."""
        if mode not in SECURITY_MODES:
            raise LocalKafkaError(
                f"Unknown security mode {mode!r}: use {' or '.join(SECURITY_MODES)}."
            )
        if mode == "plaintext":
            if user is not None or password is not None:
                raise LocalKafkaError(
                    "--user and --password only apply with --security sasl "
                    "(a plaintext cluster has no credentials)."
                )
            return cls()
        security = cls(mode, DEFAULT_USER if user is None else user, password or "")
        for what, value in (("user name", security.user), ("password", password)):
            if value is not None and not _SAFE_SECRET.fullmatch(value):
                raise LocalKafkaError(
                    f"The SASL {what} {value!r} is empty or has characters the broker's "
                    "configuration cannot hold unquoted: use letters, digits and . _ ~ @ + - only."
                )
        return security

    def with_password(self) -> Security:
        """This security, with a random password if it is `sasl` and none was chosen."""
        if self.mode == "sasl" and not self.password:
            return replace(self, password=secrets.token_urlsafe(12))
        return self

    @property
    def listener(self) -> str:
        """Name and security protocol of the client (and inter-broker) listener."""
        return "SASL_PLAINTEXT" if self.mode == "sasl" else "PLAINTEXT"

    def client_settings(self, bootstrap: str) -> dict[str, str]:
        """The librdkafka settings a client of this cluster needs."""
        settings = {"bootstrap.servers": bootstrap}
        if self.mode == "sasl":
            settings |= {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": self.user,
                "sasl.password": self.password,
            }
        return settings

    def format_arguments(self) -> list[str]:
        """`StorageTool format` arguments that create the SCRAM user: in KRaft, credentials
        are metadata records, and the first ones must exist before any broker authenticates."""
        if self.mode != "sasl":
            return []
        return ["--add-scram", f"{SCRAM_MECHANISM}=[name={self.user},password={self.password}]"]

    def listener_properties(self) -> dict[str, str]:
        """Broker settings of the SASL listener (none for plaintext)."""
        if self.mode != "sasl":
            return {}
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{self.user}" password="{self.password}";'
        )
        return {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        }


def toml_block(settings: dict[str, str]) -> str:
    """The `[kafka]` table of `infinitic.toml` holding `settings` (keys quoted: they have dots)."""
    lines = [f"{json.dumps(key)} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(["[kafka]", *lines])


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


def server_properties(node: Node, nodes: list[Node], security: Security | None = None) -> str:
    """The broker configuration of `node`, with defaults that work on one small machine."""
    security = security or Security()
    listener = security.listener
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)
    replicas = min(len(nodes), 3)
    min_isr = 2 if replicas == 3 else 1
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"{listener}://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"{listener}://{HOST}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": listener,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
        **security.listener_properties(),
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
