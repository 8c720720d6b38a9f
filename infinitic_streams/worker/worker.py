"""`Worker`: the engine, service workers, or both, in one process.

The engine runs workflow code itself (see `engine/engine.py`), so "workflow workers" are the
engine: a Worker with `workflows=[...]` and `engine=True` runs them, and, in a thread of its
own, the visibility index that answers `list` and `count` (unless `visibility=False`).
Service workers run in their own threads, one consumer group per service. SIGTERM or SIGINT
stop everything cleanly: the engine commits its work, service workers finish their tasks.

A worker never fails silently: when one of its parts (the engine, a service worker) stops on
an error, the others are stopped too and the error is raised: by `run()`, or, for a worker
started with `start()`, by `join()` and `stop()` (and `error` holds it).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from infinitic_streams.config import InfiniticConfig, import_object
from infinitic_streams.definitions import workflow_spec
from infinitic_streams.engine.engine import WorkflowEngine
from infinitic_streams.engine.metrics import EngineMetrics
from infinitic_streams.engine.processor import EngineProcessor
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.kafka.errors import KafkaUnavailable
from infinitic_streams.kafka.settings import bootstrap_of
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.streams import RetryLater, StreamApp, StreamConfig
from infinitic_streams.streams.signals import stop_on_signals
from infinitic_streams.topics import Topics
from infinitic_streams.visibility.processor import VisibilityProcessor
from infinitic_streams.worker.endpoint import MetricsEndpoint
from infinitic_streams.worker.service_worker import ServiceWorker

logger = logging.getLogger("infinitic_streams.worker")
INDEX_STOP_S = 30.0  # how long a stopping worker waits for its visibility index


class Worker:
    def __init__(
        self,
        kafka: Mapping[str, Any],
        namespace: str = "default",
        services: Sequence[object] = (),
        workflows: Sequence[type] = (),
        engine: bool = True,
        state_dir: str | Path = ".infinitic/state",
        concurrency: int = 16,
        partitions: int = 8,
        cache_size: int = 10_000,
        registry: CollectorRegistry = REGISTRY,
        stream: Mapping[str, Any] | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        instance_id: str | None = None,
        visibility: bool = True,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
    ) -> None:
        if not engine and not services:
            raise ValueError("a Worker needs services, or engine=True, or both")
        self.kafka = dict(kafka)
        self.bootstrap = bootstrap_of(self.kafka)
        self.topics = Topics(namespace, partitions, max_payload_bytes)
        # With the engine here, it logs each failed attempt with its retry decision.
        failure_level = logging.DEBUG if engine else logging.INFO
        self.services = [
            ServiceWorker(impl, self.kafka, self.topics, concurrency, failure_level, registry)
            for impl in services
        ]
        self.workflow_names = sorted(workflow_spec(w).name for w in workflows)
        self.state_dir = Path(state_dir)
        self.app: StreamApp | None = None
        self.visibility_app: StreamApp | None = None
        if engine:
            workflow_engine = WorkflowEngine.of(
                list(workflows),
                self.topics,
                cache_size=cache_size,
                ensure_topic=TopicCreator(self.kafka, self.topics),
                max_payload_bytes=max_payload_bytes,
                metrics=EngineMetrics(namespace, registry),
            )
            config = StreamConfig(
                kafka=self.kafka,
                namespace=namespace,
                state_dir=Path(state_dir),
                instance_id=instance_id,
                max_message_bytes=self.topics.max_message_bytes,
                producer={"linger.ms": 1},
                **(stream or {}),
            )
            if "idle_commit_ms" not in (stream or {}):
                # A step that issued only tasks and events stays open for the next input: the
                # task hop does not wait for commits (EngineProcessor.waits_for_commit).
                config = dataclasses.replace(config, idle_commit_ms=config.commit_interval_ms)
            self.app = StreamApp(EngineProcessor(workflow_engine), config, registry)
            if visibility:  # beside the engine, on the events its engines write
                # Nobody waits for its state, only for its answers: its idle transactions
                # commit with the commit interval, not once per engine step.
                lazy = dataclasses.replace(config, idle_commit_ms=config.commit_interval_ms)
                self.visibility_app = StreamApp(VisibilityProcessor(self.topics), lazy, registry)
        self.registry = registry
        self.metrics_address = None if metrics_port is None else (metrics_host, metrics_port)
        self.endpoint: MetricsEndpoint | None = None  # serving while the worker runs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()

    @classmethod
    def from_config(cls, path: str | Path = "infinitic.toml", **overrides: Any) -> Worker:
        """A Worker as `infinitic.toml` describes it; keyword arguments replace its settings
        (services and workflows named in the file are imported only when not replaced)."""
        config = InfiniticConfig.load(path)
        worker = config.worker
        settings: dict[str, Any] = {
            "kafka": config.kafka,
            "namespace": config.namespace,
            "engine": worker.engine,
            "state_dir": worker.state_dir,
            "concurrency": worker.concurrency,
            "cache_size": worker.cache_size,
            "partitions": config.partitions,
            "max_payload_bytes": config.max_payload_bytes,
            "instance_id": worker.instance_id,
            "visibility": worker.visibility,
            "metrics_port": config.metrics.port,
            "metrics_host": config.metrics.host,
            **overrides,
        }
        if "services" not in settings:
            settings["services"] = [import_object(ref)() for ref in worker.services]
        if "workflows" not in settings:
            settings["workflows"] = [import_object(ref) for ref in worker.workflows]
        return cls(**settings)

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (in the main thread) or `stop()`. If a part of the worker
        fails, the others stop and its error is raised here."""
        with stop_on_signals(lambda: self.stop(timeout=0)):
            self._run()

    def _run(self) -> None:
        logger.info("worker starting: %s", self.summary())
        if self.metrics_address is not None:
            host, port = self.metrics_address
            try:
                self.endpoint = MetricsEndpoint(host, port, self.registry, self.not_ready)
            except OSError as error:
                raise InfiniticError(
                    f"cannot serve metrics on {host}:{port}: {error.strerror}. Choose another "
                    "port (--metrics-port, [metrics] port) or stop what uses it."
                ) from None
            self.endpoint.start()
        try:
            self._run_parts()
        finally:
            if self.endpoint is not None:
                self.endpoint.stop()

    def not_ready(self) -> str | None:
        """Why the worker does not process its input yet (None: it does): what `/readyz`
        says. Ready once its stream apps have joined their groups and restored their
        partitions, and its service workers have joined theirs."""
        if self._stop.is_set():
            return "stopping"
        for name, app in (("engine", self.app), ("visibility index", self.visibility_app)):
            if app is not None and not app.ready:
                return f"the {name} has not joined its group or restored its partitions"
        for service in self.services:
            if not service.joined:
                return f"service {service.spec.name} has not joined its group"
        return None

    def _run_parts(self) -> None:
        if not self._ensure_topics():
            logger.info("worker stopped before Kafka answered")
            return
        threads = [
            threading.Thread(target=self._serve, args=(s,), name=f"service {s.spec.name}")
            for s in self.services
        ]
        index = None
        if self.visibility_app is not None:  # a daemon: a stop never waits on it past a bound
            index = threading.Thread(target=self._serve_visibility, name="visibility", daemon=True)
            index.start()
        for thread in threads:
            thread.start()
        try:
            if self.app is not None:
                self.app.run(stop_signals=False)  # this worker's handlers stop it
            else:
                self._stop.wait()
        except Exception as error:
            self._failed("the engine", error)
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()
            if index is not None:
                index.join(INDEX_STOP_S)
                if index.is_alive():  # a librdkafka call that outlives its timeout, no broker
                    logger.warning(
                        "the visibility index still stops after %.0f s: leaving it (its "
                        "uncommitted work is redone by the next owner)",
                        INDEX_STOP_S,
                    )
        if self._error is not None:
            logger.info(
                "worker stopped on an error: %s: %s", type(self._error).__name__, self._error
            )
            raise self._error
        logger.info("worker stopped")

    def start(self) -> Worker:
        """Run in a background thread (for tests and `infinitic-streams dev`). An error that
        stops it is raised by `join()` and `stop()`."""
        self._thread = threading.Thread(
            target=self._run_quietly, name="infinitic worker", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop and wait up to `timeout` s for the worker to finish (when started with
        `start()`); raise the error that stopped it, if one did."""
        self._stop.set()
        self._stop_apps()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("worker still stopping after %.0f s", timeout)
            self._raise_error()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until a worker started with `start()` ends (stopped, or failed: then raise its
        error). True once it has ended, False if it still runs after `timeout` seconds."""
        if self._thread is None:
            raise RuntimeError("join() waits for a worker started with start()")
        self._thread.join(timeout)
        self._raise_error()
        return not self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The error that stopped the worker, if one did."""
        return self._error

    def summary(self) -> str:
        """What this worker runs, for its first log line. The Kafka settings appear as their
        bootstrap servers only: never their secrets."""
        parts = []
        if self.app is not None:
            names = ", ".join(self.workflow_names) or "none"
            parts.append(f"the engine (workflows {names}; state in {self.state_dir})")
            if self.visibility_app is not None:
                parts.append("the visibility index")
        if self.services:
            names = ", ".join(f"{s.spec.name} ({s.concurrency} at a time)" for s in self.services)
            parts.append(f"services {names}")
        return (
            f"namespace {self.topics.namespace!r} on Kafka {self.bootstrap} "
            f"({self.topics.partitions} partitions per topic): {' + '.join(parts)}"
        )

    def _serve(self, service: ServiceWorker) -> None:
        """A service worker's thread: its error stops the whole worker."""
        try:
            service.run(self._stop)
        except BaseException as error:
            self._failed(f"service {service.spec.name}", error)

    def _serve_visibility(self) -> None:
        """The visibility index's thread: its error stops the whole worker."""
        assert self.visibility_app is not None
        try:
            self.visibility_app.run(stop_signals=False)
        except BaseException as error:
            self._failed("the visibility index", error)

    def _failed(self, part: str, error: BaseException) -> None:
        """Keep the first error (raised by run) and stop every part of the worker."""
        with self._error_lock:
            first = self._error is None
            if first:
                self._error = error
                error.add_note(f"(raised by {part} of the infinitic-streams Worker)")
        level = logging.ERROR if first else logging.WARNING
        what = "stopping the worker" if first else "while the worker stops"
        logger.log(
            level, "%s failed (%s): %s: %s", part, what, type(error).__name__, error, exc_info=error
        )
        self._stop.set()
        self._stop_apps()

    def _stop_apps(self) -> None:
        for app in (self.app, self.visibility_app):
            if app is not None:
                app.stop()

    def _run_quietly(self) -> None:
        """`run()` in `start()`'s thread: its error is kept for `join()` and `stop()`."""
        try:
            self.run()
        except BaseException as error:
            with self._error_lock:
                if self._error is None:
                    self._error = error

    def _raise_error(self) -> None:
        error = self._error
        if error is not None:
            raise error.with_traceback(error.__traceback__)

    def _ensure_topics(self) -> bool:
        """Create the topics this worker needs, waiting for Kafka as long as it takes (a pod
        may start before its brokers); False if stopped meanwhile. Refused credentials and
        mismatching topics raise at once."""
        specs = self.topics.specs([s.spec.name for s in self.services])
        admin = Admin(self.kafka)
        while not self._stop.is_set():
            try:
                admin.ensure_topics(specs)
                return True
            except KafkaUnavailable as error:
                logger.warning("waiting for Kafka: %s", error)
                self._stop.wait(1.0)
        return False


class TopicCreator:
    """Creates each task topic the first time the engine sends to it."""

    def __init__(self, kafka: Mapping[str, Any], topics: Topics) -> None:
        self._admin, self._topics = Admin(kafka), topics
        self._known: set[str] = set()

    def __call__(self, topic: str) -> None:
        if topic not in self._known:
            service = topic.removeprefix(f"{self._topics.namespace}.tasks.")
            try:
                self._admin.ensure_topics([self._topics.task_spec(service)])
            except KafkaUnavailable as error:
                raise RetryLater(f"creating topic {topic}: {error}") from None
            self._known.add(topic)
