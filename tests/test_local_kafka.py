"""The local broker: configuration, each documented error, and a real start/kill/restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infinitic_streams.local_kafka import cluster, provision
from infinitic_streams.local_kafka.config import plan_nodes, server_properties
from infinitic_streams.local_kafka.provision import LocalKafkaError

from .ports import free_port_pair


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
        cluster._wait_ready([node], [process], node.address)


def cli(*args: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infinitic_streams", "kafka", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.kafka
def test_status_after_kill_9_is_down_and_up_starts_a_fresh_broker(tmp_path: Path) -> None:
    port = free_port_pair()
    started = cli("up", "--port", str(port), run_dir=tmp_path)
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

        restarted = cli("up", "--port", str(port), run_dir=tmp_path)
        assert restarted.returncode == 0, restarted.stderr
        second = cluster.ClusterRecord.load(tmp_path)
        assert second is not None
        assert second.cluster_id != first.cluster_id  # a fresh, newly formatted broker
        assert cli("status", run_dir=tmp_path).returncode == 0
    finally:
        stopped = cli("down", run_dir=tmp_path)
    assert stopped.returncode == 0
    assert cli("status", run_dir=tmp_path).returncode == 1
