"""Processors the runtime tests run in subprocesses (`python -m tests.apps.processors ...`)."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import time

from prometheus_client import start_http_server

from infinitic_streams.streams import Context, Processor, Record, StreamApp, StreamConfig, Timer

PARTITIONS = 8


class Counter(Processor):
    """Adds each input amount to the running total of its key and emits the new total."""

    name = "counter"

    def __init__(self, namespace: str) -> None:
        self.input_topics = (f"{namespace}.increments",)
        self.output = f"{namespace}.counts"

    def decode(self, key: bytes | None, value: bytes | None) -> int:
        return int(value or b"")

    def process(self, ctx: Context, record: Record) -> None:
        assert record.key is not None
        total = int(ctx.get(record.key) or b"0") + record.value
        ctx.put(record.key, str(total).encode())
        ctx.emit(self.output, record.key, str(total).encode())


class Timers(Processor):
    """Each input `key -> delay_ms` schedules a timer due `delay_ms` after the input's
    timestamp; a fired timer emits `key -> due_ms,fired_ms`."""

    name = "timers"

    def __init__(self, namespace: str) -> None:
        self.input_topics = (f"{namespace}.timer-requests",)
        self.output = f"{namespace}.fired"

    def decode(self, key: bytes | None, value: bytes | None) -> int:
        return int(value or b"")

    def process(self, ctx: Context, record: Record) -> None:
        assert record.key is not None
        ctx.schedule(record.key, record.timestamp_ms + record.value)

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        fired = f"{timer.due_ms},{int(time.time() * 1000)}".encode()
        ctx.emit(self.output, timer.key, fired)


PROCESSORS = {"counter": Counter, "timers": Timers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("processor", choices=sorted(PROCESSORS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--metrics-port", type=int)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks into the log, on demand
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    config = StreamConfig(
        kafka={"bootstrap.servers": args.bootstrap},
        namespace=args.namespace,
        state_dir=args.state_dir,
        session_timeout_ms=6000,
    )
    StreamApp(PROCESSORS[args.processor](args.namespace), config).run()


if __name__ == "__main__":
    main()
