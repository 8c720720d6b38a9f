"""The local broker: configuration, each documented error, and real clusters: a start, kill
and restart; one node of three stopped and started with its data; a SASL/SCRAM cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from infinitic_streams.kafka.admin import TopicSpec, describe_cluster, ensure_topics
from infinitic_streams.kafka.errors import KafkaAuthError, KafkaUnavailable
from infinitic_streams.local_kafka import cluster, nodes, processes, provision
from infinitic_streams.local_kafka.config import Security, plan_nodes, server_properties, toml_block
from infinitic_streams.local_kafka.provision import LocalKafkaError, default_cache_dir
from infinitic_streams.local_kafka.record import ClusterRecord, NodeProcess

from .kafka_support import read_topic
from .ports import free_port_pair

# Generous bounds for brokers to serve: the CI machine may be busy (conditions are waited on).
SLOW = 180.0
WAIT = ("--timeout", str(SLOW))


def quiet(_: str) -> None:
    pass


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_single_node_config_makes_transactions_possible(tmp_path: Path) -> None:
    [node] = plan_nodes(tmp_path, 1, 9092, 9192)
    props = properties(server_properties(node, [node]))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9192"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9192"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["log.dirs"] == str(tmp_path / "node-1" / "data")


def test_three_nodes_share_voters_and_replicate_internal_topics(tmp_path: Path) -> None:
    nodes = plan_nodes(tmp_path, 3, 9400, 9500)
    assert [(n.port, n.controller_port) for n in nodes] == [
        (9400, 9500),
        (9401, 9501),
        (9402, 9502),
    ]
    props = properties(server_properties(nodes[2], nodes))
    assert props["node.id"] == "3"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9500,2@127.0.0.1:9501,3@127.0.0.1:9502"
    )
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"


def fake_executable(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_missing_java_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalKafkaError, match=r"Java 17\+ is needed.*JAVA_HOME.*INFINITIC_KAFKA"):
        provision.java_command()


def test_old_java_is_refused(tmp_path: Path) -> None:
    java = fake_executable(tmp_path, "java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2")
    with pytest.raises(LocalKafkaError, match=r"needs Java 17\+.*is Java 11"):
        provision.check_java(str(java))
    java8 = fake_executable(tmp_path / "j8", "java", "echo 'java version \"1.8.0_292\"' >&2")
    with pytest.raises(LocalKafkaError, match="is Java 8"):
        provision.check_java(str(java8))


def test_missing_maven_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LocalKafkaError, match=r"Maven \(`mvn`\) is needed.*apt-get install maven"):
        provision.ensure_jars(tmp_path / "cache", log=lambda _: None)


def test_failed_download_shows_mavens_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    fake_executable(bin_dir, "mvn", "echo 'Could not transfer artifact kafka_2.13'; exit 1")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(LocalKafkaError, match=r"(?s)exit code 1.*Could not transfer artifact"):
        provision.ensure_jars(tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache" / f"kafka-{provision.KAFKA_VERSION}" / "libs").exists()


def test_taken_port_names_the_fix(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(LocalKafkaError, match=rf"Port {port} .* already in use.*--port"):
            cluster.up(tmp_path, tmp_path / "cache", port=port, log=lambda _: None)


def test_early_exit_shows_the_log_tail(tmp_path: Path) -> None:
    [node] = plan_nodes(tmp_path, 1, free_port_pair(), 0)
    node.directory.mkdir()
    node.log_file.write_text("starting\nERROR Exiting Kafka due to fatal exception\n")
    process = subprocess.Popen(["false"])
    process.wait()
    with pytest.raises(LocalKafkaError, match=r"(?s)exited early \(exit code 1\).*fatal exception"):
        processes.wait_serving([node], [process], {"bootstrap.servers": node.address})


def cli(*args: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    """`infinitic-streams kafka ...` on the cluster of `run_dir` (not `make test`'s broker)."""
    env = {k: v for k, v in os.environ.items() if k != "INFINITIC_KAFKA"}
    return subprocess.run(
        [sys.executable, "-m", "infinitic_streams", "kafka", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=2 * SLOW,
        check=False,
        env=env,
    )


@pytest.mark.kafka
def test_status_after_kill_9_is_down_and_up_starts_a_fresh_broker(tmp_path: Path) -> None:
    port = free_port_pair()
    started = cli("up", "--port", str(port), *WAIT, run_dir=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        first = cluster.ClusterRecord.load(tmp_path)
        assert first is not None
        status = cli("status", run_dir=tmp_path)
        assert (status.returncode, status.stdout.split()[:2]) == (0, ["up:", f"127.0.0.1:{port}"])

        os.kill(first.nodes[0].pid, signal.SIGKILL)
        status = cli("status", run_dir=tmp_path)
        assert status.returncode == 1
        assert status.stdout.startswith("down")

        restarted = cli("up", "--port", str(port), *WAIT, run_dir=tmp_path)
        assert restarted.returncode == 0, restarted.stderr
        second = cluster.ClusterRecord.load(tmp_path)
        assert second is not None
        assert second.cluster_id != first.cluster_id  # a fresh, newly formatted broker
        assert cli("status", run_dir=tmp_path).returncode == 0
    finally:
        stopped = cli("down", run_dir=tmp_path)
    assert stopped.returncode == 0
    assert cli("status", run_dir=tmp_path).returncode == 1


# -- SASL configuration, without a broker ----------------------------------------------------


def test_sasl_config_uses_scram_between_brokers_and_for_clients(tmp_path: Path) -> None:
    nodes_ = plan_nodes(tmp_path, 3, 9400, 9500)
    security = Security.of("sasl", "alice", "s3cret")
    props = properties(server_properties(nodes_[0], nodes_, security))
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9400,CONTROLLER://127.0.0.1:9500"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:9400"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="alice" password="s3cret";'
    )
    assert security.format_arguments() == [
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=s3cret]",
    ]
    settings = security.client_settings("127.0.0.1:9400")
    assert tomllib.loads(toml_block(settings)) == {"kafka": settings}
    assert settings["sasl.username"] == "alice"


def test_sasl_choices_are_checked() -> None:
    random_one = Security.of("sasl").with_password()
    assert (random_one.user, len(random_one.password) >= 16) == ("infinitic", True)
    assert Security.of("sasl").with_password().password != random_one.password
    assert Security.of("sasl", password="mine").with_password().password == "mine"
    with pytest.raises(LocalKafkaError, match="only apply with --security sasl"):
        Security.of("plaintext", password="x")
    with pytest.raises(LocalKafkaError, match=r"password 'a\"b' .* letters, digits"):
        Security.of("sasl", password='a"b')
    with pytest.raises(LocalKafkaError, match="Unknown security mode 'tls'"):
        Security.of("tls")


def test_a_record_without_client_settings_gets_its_bootstrap(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(
        '{"bootstrap": "127.0.0.1:9", "kafka_version": "4.1.1", "cluster_id": "x", '
        '"started_at": 0, "ready_seconds": 1.0, "nodes": []}'
    )
    record = ClusterRecord.load(tmp_path)
    assert record is not None
    assert (record.security, record.client_settings) == (
        "plaintext",
        {"bootstrap.servers": "127.0.0.1:9"},
    )


# -- stop-node / start-node errors, on a recorded cluster whose nodes do not run -------------


def dead_cluster(run_dir: Path, count: int) -> ClusterRecord:
    """A recorded cluster of `count` formatted nodes, none running (their pid has exited)."""
    exited = subprocess.Popen(["true"])
    exited.wait()
    entries = []
    for node in plan_nodes(run_dir, count, 1, 101):
        node.data_dir.mkdir(parents=True)
        (node.data_dir / "meta.properties").write_text("node.id=1\n")
        ports = (node.port, node.controller_port)
        entries.append(NodeProcess(node.node_id, exited.pid, *ports, str(node.log_file)))
    bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in entries)
    record = ClusterRecord(bootstrap, "4.1.1", "id", 0.0, 1.0, entries)
    record.save(run_dir)
    return record


def test_node_commands_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match=r"No local Kafka is recorded in .*kafka up"):
        cluster.stop_node(tmp_path, 1, log=quiet)
    dead_cluster(tmp_path, 3)
    with pytest.raises(LocalKafkaError, match=r"has no node 4: its node\(s\) are 1, 2, 3\.$"):
        cluster.start_node(tmp_path, 4, log=quiet)
    with pytest.raises(LocalKafkaError, match=r"node 2 .* already stopped.*start-node 2"):
        cluster.stop_node(tmp_path, 2, log=quiet)
    with pytest.raises(LocalKafkaError, match=r"KRaft quorum needs 2.*`.*start-node 1 2 3`"):
        cluster.start_node(tmp_path, 2, log=quiet)
    (tmp_path / "node-1" / "data" / "meta.properties").unlink()
    with pytest.raises(LocalKafkaError, match=r"node 1 has no formatted data .*down` then"):
        nodes.start_nodes(tmp_path, [1, 2], log=quiet)


def test_cli_node_commands_fail_with_one_line(tmp_path: Path) -> None:
    dead_cluster(tmp_path, 1)
    for command in ("stop-node", "start-node"):
        failed = cli(command, "2", run_dir=tmp_path)
        assert failed.returncode == 1
        assert failed.stderr.strip().splitlines() == [
            f"The local cluster of {tmp_path} has no node 2: its node(s) are 1."
        ]
    empty = tmp_path / "empty"
    failed = cli("start-node", "1", run_dir=empty)
    assert (failed.returncode, "No local Kafka is recorded" in failed.stderr) == (1, True)


# -- real clusters ---------------------------------------------------------------------------


def produce(settings: Mapping[str, str], topic: str, values: range) -> None:
    """Write `values` with acks=all, and fail unless every record was acknowledged."""
    failures: list[str] = []
    producer = Producer({**settings, "enable.idempotence": True, "acks": "all"})

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for value in values:
        producer.produce(topic, key=str(value % 7), value=str(value), on_delivery=delivered)
    assert producer.flush(120) == 0
    assert failures == []


def read_values(settings: Mapping[str, str], topic: str) -> list[int]:
    """Every value of `topic`, read until each partition's end offset, sorted."""
    return sorted(int(value) for _, value in read_topic(settings, topic))


def wait_in_sync(settings: Mapping[str, str], topic: str, replicas: set[int]) -> None:
    """Wait (bounded) until every partition of `topic` has all `replicas` in sync."""
    admin = AdminClient(dict(settings))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        if all(set(p.isrs) == replicas for p in partitions):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{topic} did not get replicas {replicas} in sync within 90 s")


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ClusterRecord]]:
    """A 3-node plaintext cluster for this module's fault tests, stopped at the end."""
    run_dir = tmp_path_factory.mktemp("three-nodes")
    port = free_port_pair(3)
    record = cluster.up(run_dir, default_cache_dir(), 3, port, log=quiet, timeout=SLOW)
    try:
        yield run_dir, record
    finally:
        cluster.down(run_dir, log=quiet)


@pytest.mark.kafka
def test_killed_node_comes_back_with_its_data(three_nodes: tuple[Path, ClusterRecord]) -> None:
    run_dir, record = three_nodes
    settings = record.client_settings
    topic = f"drill-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(topic, 3)])
    produce(settings, topic, range(100))
    wait_in_sync(settings, topic, {1, 2, 3})

    cluster.stop_node(run_dir, 2, kill=True, log=quiet)
    current = cluster.status(run_dir)
    assert (current.state, current.running_nodes) == ("degraded", [1, 3])
    data = run_dir / "node-2" / "data"
    assert {d.name for d in data.glob(f"{topic}-*")} == {f"{topic}-{p}" for p in range(3)}
    assert sum(f.stat().st_size for f in data.glob(f"{topic}-*/*.log")) > 0
    produce(settings, topic, range(100, 200))  # two replicas of three: min ISR 2 still holds
    assert read_values(settings, topic) == list(range(200))

    restarted = cluster.start_node(run_dir, 2, log=quiet, timeout=SLOW)
    assert restarted.pid != record.nodes[1].pid
    saved = ClusterRecord.load(run_dir)
    assert saved is not None and saved.nodes[1].pid == restarted.pid
    assert cluster.status(run_dir).state == "up"
    assert [b.node_id for b in describe_cluster(settings, timeout=30).brokers] == [1, 2, 3]
    wait_in_sync(settings, topic, {1, 2, 3})  # it caught up on what it missed
    assert read_values(settings, topic) == list(range(200))


@pytest.mark.kafka
def test_cli_stops_nodes_cleanly_and_starts_them_together(
    three_nodes: tuple[Path, ClusterRecord],
) -> None:
    run_dir, record = three_nodes
    settings = record.client_settings
    topic = f"term-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(topic, 3)])
    produce(settings, topic, range(50))

    running = cli("start-node", "1", run_dir=run_dir)
    assert (running.returncode, "already runs" in running.stderr) == (1, True)
    stopped = cli("stop-node", "1", run_dir=run_dir)  # SIGTERM: a clean shutdown
    assert stopped.returncode == 0, stopped.stderr
    assert "its data is kept" in stopped.stdout
    status = cli("status", run_dir=run_dir)
    assert status.returncode == 1
    assert status.stderr.startswith("degraded") and "start-node 1" in status.stderr
    again = cli("stop-node", "1", run_dir=run_dir)
    assert (again.returncode, "already stopped" in again.stderr) == (1, True)

    for node in ("2", "3"):  # the whole cluster down, its quorum lost
        killed = cli("stop-node", node, "--kill", run_dir=run_dir)
        assert killed.returncode == 0, killed.stderr
        assert "without a quorum" in killed.stdout
    alone = cli("start-node", "1", run_dir=run_dir)
    assert alone.returncode == 1
    assert "KRaft quorum needs 2" in alone.stderr and "start-node 1 2 3" in alone.stderr
    together = cli("start-node", "1", "2", "3", *WAIT, run_dir=run_dir)
    assert together.returncode == 0, together.stderr
    assert cli("status", run_dir=run_dir).returncode == 0
    assert read_values(settings, topic) == list(range(50))


@pytest.fixture(scope="module")
def sasl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A 1-node SASL/SCRAM cluster started by the CLI, with what `up` printed."""
    run_dir = tmp_path_factory.mktemp("sasl")
    port = str(free_port_pair())
    started = cli("up", "--security", "sasl", "--port", port, *WAIT, run_dir=run_dir)
    try:
        assert started.returncode == 0, started.stderr
        yield run_dir, started.stdout
    finally:
        cli("down", run_dir=run_dir)


def printed_settings(output: str) -> dict[str, str]:
    """The `[kafka]` table `up` printed, as infinitic.toml would read it."""
    block = output[output.index("[kafka]") :].split("\n\n")[0]
    return tomllib.loads(block)["kafka"]


@pytest.mark.kafka
def test_sasl_cluster_serves_the_printed_settings_only(sasl_cluster: tuple[Path, str]) -> None:
    run_dir, output = sasl_cluster
    settings = printed_settings(output)
    record = ClusterRecord.load(run_dir)
    assert record is not None and record.client_settings == settings
    assert settings["security.protocol"] == "SASL_PLAINTEXT"
    assert (settings["sasl.mechanism"], settings["sasl.username"]) == ("SCRAM-SHA-512", "infinitic")

    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(topic, 2)])
    assert topic in describe_cluster(settings, timeout=30).topics
    produce(settings, topic, range(20))
    assert read_values(settings, topic) == list(range(20))
    info = cli("info", run_dir=run_dir)  # the local record's SASL settings
    assert info.returncode == 0, info.stderr
    assert topic in info.stdout

    with pytest.raises(KafkaAuthError):
        describe_cluster({**settings, "sasl.password": "wrong"}, timeout=30)
    with pytest.raises(KafkaUnavailable):
        describe_cluster({"bootstrap.servers": settings["bootstrap.servers"]}, timeout=3)
    plaintext = cli("up", "--port", str(record.nodes[0].port), run_dir=run_dir)
    assert plaintext.returncode == 1
    assert "security sasl already runs" in plaintext.stderr


@pytest.mark.kafka
def test_sasl_node_restarts_with_its_data(sasl_cluster: tuple[Path, str]) -> None:
    run_dir, output = sasl_cluster
    settings = printed_settings(output)
    topic = f"kept-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(topic, 1)])
    produce(settings, topic, range(10))

    cluster.stop_node(run_dir, 1, log=quiet)
    assert cluster.status(run_dir).state == "down"
    cluster.start_node(run_dir, 1, log=quiet, timeout=SLOW)  # ready: with the recorded settings
    assert cluster.status(run_dir).state == "up"
    assert read_values(settings, topic) == list(range(10))
