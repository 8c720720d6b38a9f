"""Shared fixtures: the real Kafka broker and a unique namespace per test.

Tests that take `kafka_bootstrap` are marked `kafka` automatically (`make unit` skips them).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitic_streams.local_kafka import cluster
from infinitic_streams.local_kafka.provision import default_cache_dir

from .engine_harness import Harness, harnesses
from .kafka_support import AppProcess
from .ports import free_port_pair


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker: $INFINITIC_KAFKA (as `make test` sets it), else a
    local broker started for this session and stopped at its end."""
    if address := os.environ.get("INFINITIC_KAFKA"):
        yield address
        return
    run_dir = tmp_path_factory.mktemp("kafka")
    record = cluster.up(
        run_dir, default_cache_dir(), port=free_port_pair(), log=lambda _: None, timeout=180.0
    )
    try:
        yield record.bootstrap
    finally:
        cluster.down(run_dir, log=lambda _: None)


@pytest.fixture(autouse=True)
def _kill_leftover_apps() -> Iterator[None]:
    """Apps a failed test left running must not outlive it."""
    yield
    AppProcess.kill_all()


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace no other test uses, so topics and groups never collide."""
    name = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:40].strip("-")
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=[False, True], ids=["live", "replayed"])
def harness_in_both_modes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Harness]]:
    """Makes harnesses whose engine keeps live instances, or drops them before every message
    (every step is then a replay): a test using it runs once in each mode."""
    for make in harnesses(tmp_path):  # runs its clean-up after the test

        def in_mode(
            workflows: list[type], make: Callable[..., Harness] = make, **options: Any
        ) -> Harness:
            h = make(workflows, **options)
            h.drop_cache = request.param
            return h

        yield in_mode
