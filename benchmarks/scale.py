"""Scale: many workflows waiting on signals, sustained throughput, and a per-step cost that
stays flat as a history grows.

    python benchmarks/scale.py [--bootstrap ADDR] [--quick] [--only e,f,g,h] [--branches B]
                               [--signal-workflows N] [--sustained-workflows N] [--steps S]
                               [--window W] [--clients C] [--flat-steps 1,50,1000,10000]
                               [--signal-threads T] [--dispatchers D] [--verbose]

One broker (default: $INFINITIC_KAFKA, else 127.0.0.1:9092), a fresh namespace
`bench-scale-<uuid8>` whose topics and consumer groups are deleted at the end. As
`benchmarks/workflows.py --layout processes` runs them (layout.py): the engine (a Worker with
engine=True, the visibility index and the workflows below; its default LRU cache of 10,000 live
instances) and the no-op service worker each in its own process, so the engine's memory and
threads are its own; this process is the client. After a warm-up (a 5-step workflow, one
signal round trip), in this order:

(e) signals: N workflows (10,000; 2,000 with --quick) `BenchWaiter.run`, each blocked on
    `self.wake.receive().result()` (a `Channel(str)`), dispatched from D threads (16; a
    dispatch waits for Kafka's acknowledgement). Once the visibility index counts all N
    RUNNING (a workflow runs its code up to `receive()` in the transaction that starts it), the
    engine's VmRSS, its OS threads (`Threads:` of /proc/<pid>/status) and their names
    (/proc/<pid>/task/*/comm) are read, next to the same read before the dispatch (idle).
    Then one signal to every workflow, from T threads (64) calling `h.signal()` (it returns
    once the engine recorded the signal); results come meanwhile: signals/s = N / (first
    signal sent -> every signal acknowledged and every result received). The engine's VmHWM is read
    after the last result. Python before 3.14 names no OS thread: threads running branches,
    if any, would bear the process's own name, as Python's do (`python_threads`).
(h) branches: (e) again, each workflow running B branches (20) that each wait on
    `receive()`; the first branch to take the signal ends it (its fields are (e)'s prefixed
    `branches_`, and its "idle" reading is the engine after (e)).
(f) sustained: N workflows (2,000; 500 with --quick) `BenchChain.run(S)`: S sequential no-op
    tasks (10), never more than W in flight (200): W loops, spread over C clients (4), each
    dispatching its next workflow once its last one's result arrived. Rates are from the first
    dispatch to the last result (the steady rate: between the 10th and the 90th percentile of
    the ends, when N >= 2 W); p50 and p95 of each workflow's time from dispatch to result.
(g) flat: 1 workflow of S sequential no-op tasks for each S of --flat-steps (1, 50, 1,000,
    10,000; 1, 50, 1,000, 2,000 with --quick): ms per step = dispatch to result / S (median
    of 3 runs for S <= 100, else one run), and the largest S's ms per step over 50's (or over
    the smallest S's when 50 is not listed): 1.0 means a step costs the same whatever the
    history's length.
CPU (/proc, user + system) of the client, engine, worker and broker (when it runs on this
machine) during (e)'s signals, (f) and each (g): per signal or step.

Progress goes to stderr; stdout gets a table of the measures as they end and, as its last line,
one JSON object with the fields of the phases that ran:
(e) signal_workflows, engine_rss_mb_waiting, engine_peak_rss_mb, engine_threads_waiting,
    signals_per_s, signal_all_seconds, signal_results_ok, and more signal_* and engine_*;
(f) sustained_workflows, sustained_steps_per_s, sustained_workflows_per_s, sustained_p50_ms,
    sustained_p95_ms, sustained_results_ok, and more sustained_*;
(g) flat_ms_per_step {"1": .., "50": .., ...}, flat_<largest>_vs_<base>, flat_largest_vs_base;
(h) branches, and (e)'s fields prefixed branches_ (branches_engine_rss_mb_waiting, ...);
and phases, quick, namespace, bootstrap, partitions, concurrency, rss_mb (peak, by process).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import argument_parser, delete_namespace, nearest_rank, note, run_benchmark, wait_until
from layout import Processes
from procstat import PROC, memory_and_threads, thread_names
from workflows import Chain, NoopImpl, cpu_meter

from infinitic_streams import (
    Channel,
    InfiniticClient,
    Workflow,
    WorkflowHandle,
    any_of,
    workflow,
)

PARTITIONS = 8
QUICK = {"signal_workflows": 2_000, "sustained_workflows": 500, "flat_steps": "1,50,1000,2000"}
FULL = {"signal_workflows": 10_000, "sustained_workflows": 2_000, "flat_steps": "1,50,1000,10000"}
FLAT_RUNS = 3  # runs of each (g) of at most FLAT_REPEAT_MAX steps; larger ones run once
FLAT_REPEAT_MAX = 100
TIMEOUT_S = 240.0  # plus a margin per workflow or step: a stuck phase fails instead of hanging

log = logging.getLogger("benchmarks.scale")


# -- the workload: what the engine process runs (layout.py imports WORKFLOWS and SERVICES) ------


@workflow("BenchWaiter")
class Waiter(Workflow):
    wake = Channel(str)

    def run(self, name: str, branches: int) -> str:
        """Waits for one signal; returns `name:<signal>`. With `branches`, that many branches
        each wait on `receive()`, and the first to take the signal ends the workflow."""
        if not branches:
            return f"{name}:{self.wake.receive().result()}"
        waiting = [self.branch(self.take) for _ in range(branches)]
        return f"{name}:{any_of(*waiting).result()}"

    def take(self) -> str:
        return self.wake.receive().result()


WORKFLOWS = (Chain, Waiter)
SERVICES = (NoopImpl,)


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    namespace: str
    phases: tuple[str, ...]  # of "e", "f", "g"
    signal_workflows: int
    sustained_workflows: int
    steps: int
    window: int
    clients: int
    flat_steps: tuple[int, ...]
    signal_threads: int
    branches: int
    dispatchers: int
    concurrency: int
    quick: bool

    @property
    def kafka(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}


def row(label: str, value: str) -> None:
    print(f"{label:<48} {value}", flush=True)


def per_unit(cpu: dict[str, float], units: int) -> dict[str, float]:
    """CPU ms per unit (signal, step) by process."""
    return {name: round(s * 1000 / units, 3) for name, s in cpu.items()} if units else {}


class Scale:
    """The engine and the service worker in their own processes; clients in this one."""

    def __init__(self, settings: Settings, work_dir: Path) -> None:
        self.settings = settings
        config = {
            "bootstrap": settings.bootstrap,
            "namespace": settings.namespace,
            "kafka": {},
            "stream": {},
            "concurrency": settings.concurrency,
            "partitions": PARTITIONS,
            "workload": "scale",
        }
        self.processes = Processes(config, work_dir)
        try:
            self.client = self.new_client()
        except BaseException:
            self.processes.stop()
            raise
        self.cpu = cpu_meter({"client": os.getpid(), **self.processes.pids}, settings.bootstrap)

    def new_client(self) -> InfiniticClient:
        return InfiniticClient(self.settings.kafka, self.settings.namespace, PARTITIONS)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.processes.stop()

    def wait(self, handle: WorkflowHandle, deadline: float) -> Any:
        """The workflow's result; fails if a process died or the deadline passed."""
        while True:
            try:
                return handle.result(timeout=5.0)
            except TimeoutError:
                self.processes.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"workflow {handle.id}: no result in time") from None

    def engine_snapshot(self) -> dict[str, Any]:
        """The engine's VmRSS, VmHWM, OS threads, their names, and how many bear the
        process's own name (Python's threads: Python before 3.14 does not name them)."""
        pid = self.processes.pids["engine"]
        names = thread_names(pid)
        try:
            own = (PROC / str(pid) / "comm").read_text().strip()
        except OSError:
            own = ""
        return {**memory_and_threads(pid), "names": names, "python_threads": names.get(own, 0)}

    def warm_up(self) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        started = time.monotonic()
        self.wait(self.client.dispatch(Chain.run, 5), deadline)
        handle = self.client.dispatch(Waiter.run, "warm-up", 0)
        handle.signal("wake", "go")
        self.wait(handle, deadline)
        self.client.count(Waiter, status="RUNNING")
        note(f"warm-up done in {time.monotonic() - started:.2f} s")

    # -- (e) ---------------------------------------------------------------------------------

    def signals(self, count: int, branches: int = 0) -> dict[str, Any]:
        """(e), or (h) with `branches` branches per workflow (its fields prefixed `branches_`)."""
        phase = "(h)" if branches else "(e)"
        idle = self.engine_snapshot()
        note(f"{phase} engine idle: {idle['rss_mb']} MiB, {idle['threads']} threads")
        started = time.monotonic()
        margin = TIMEOUT_S + count * 0.02
        handles: list[WorkflowHandle] = []
        chunk = max(1, -(-count // 5))  # five, to show progress
        with ThreadPoolExecutor(self.settings.dispatchers) as pool:
            for first in range(0, count, chunk):
                ids = range(first, min(count, first + chunk))
                handles += pool.map(
                    lambda i: self.client.dispatch(Waiter.run, f"w{i}", branches), ids
                )
                self.processes.check()
                note(f"{phase} {len(handles):,} of {count:,} dispatched")
        dispatched = time.monotonic() - started
        waiting_at = wait_until(
            lambda: self.client.count(Waiter, status="RUNNING") >= count,
            f"{phase} every workflow waiting on receive()",
            self.processes.check,
            margin,
            interval=0.2,
        )
        waiting = self.engine_snapshot()
        pending = handles[-1].describe().pending
        note(f"{phase} all {count:,} RUNNING; the last one waits for {pending}")
        note(f"{phase} engine waiting: {waiting['rss_mb']} MiB, {waiting['threads']} threads")

        def send(handle: WorkflowHandle) -> float:
            handle.signal("wake", "go")
            return time.monotonic()

        cpu = self.cpu.read()
        started_signals = time.monotonic()
        deadline = started_signals + margin
        with ThreadPoolExecutor(self.settings.signal_threads) as pool:
            acks = [pool.submit(send, handle) for handle in handles]
            acked = max(ack.result() for ack in acks) - started_signals  # a refusal raises
            results = [self.wait(handle, deadline) for handle in handles]  # most arrived
            seconds = time.monotonic() - started_signals
        cpu_used = self.cpu.since(cpu)
        ok = sum(result == f"w{i}:go" for i, result in enumerate(results))
        peak = self.engine_snapshot()["peak_rss_mb"]
        grown = (waiting["rss_mb"] or 0) - (idle["rss_mb"] or 0)
        result = {
            "signal_workflows": count,
            "engine_rss_mb_idle": idle["rss_mb"],
            "engine_rss_mb_waiting": waiting["rss_mb"],
            "engine_kb_per_waiting_workflow": round(grown * 1024 / count, 2),
            "engine_peak_rss_mb": peak,
            "engine_threads_idle": idle["threads"],
            "engine_threads_waiting": waiting["threads"],
            "engine_python_threads_idle": idle["python_threads"],
            "engine_python_threads_waiting": waiting["python_threads"],
            "engine_thread_names_waiting": waiting["names"],
            "signal_dispatch_seconds": round(dispatched, 3),
            "signal_all_waiting_seconds": round(waiting_at - started, 3),
            "signals_per_s": round(count / seconds, 1),
            "signal_all_seconds": round(seconds, 3),
            "signal_acks_seconds": round(acked, 3),
            "signal_results_ok": ok,
            "signal_cpu_ms_per_signal_by_process": per_unit(cpu_used, count),
        }
        names = ", ".join(f"{n} x{c}" for n, c in waiting["names"].items())
        each = f" x {branches} branches" if branches else ""
        row(f"{phase} {count:,} workflows{each} waiting on receive()", "")
        row(
            "    dispatched; all RUNNING after", f"{dispatched:.2f} s; {waiting_at - started:.2f} s"
        )
        row(
            "    engine RSS idle -> waiting; peak",
            f"{idle['rss_mb']} -> {waiting['rss_mb']} MiB "
            f"({result['engine_kb_per_waiting_workflow']} kB per workflow); {peak} MiB",
        )
        row(
            "    engine OS threads idle -> waiting",
            f"{idle['threads']} -> {waiting['threads']} "
            f"(Python's: {idle['python_threads']} -> {waiting['python_threads']})",
        )
        row("    engine threads by name, waiting", names)
        row(
            f"    signal all ({self.settings.signal_threads} threads) -> results",
            f"{seconds:.2f} s: {count / seconds:,.0f} signals/s (last ack {acked:.2f} s); "
            f"{ok:,} of {count:,} right",
        )
        if branches:
            return {"branches": branches} | {f"branches_{k}": v for k, v in result.items()}
        return result

    # -- (f) ---------------------------------------------------------------------------------

    def sustained(self, count: int, steps: int) -> dict[str, Any]:
        window = min(self.settings.window, count)
        extra = [self.new_client() for _ in range(max(0, self.settings.clients - 1))]
        clients = [self.client, *extra]
        next_index = itertools.count()
        durations: list[float] = []
        ends: list[float] = []
        deadline = time.monotonic() + TIMEOUT_S + count * steps * 0.01
        progress = max(1, count // 4)

        def loop(client: InfiniticClient) -> int:
            wrong = 0
            while (i := next(next_index)) < count:
                began = time.monotonic()
                result = self.wait(client.dispatch(Chain.run, steps), deadline)
                ended = time.monotonic()
                wrong += result != steps
                durations.append(ended - began)
                ends.append(ended)
                if (i + 1) % progress == 0:
                    note(f"(f) the {i + 1:,}th of {count:,} workflows ended")
            return wrong

        try:
            cpu = self.cpu.read()
            started = time.monotonic()
            with ThreadPoolExecutor(window) as pool:
                loops = [pool.submit(loop, clients[k % len(clients)]) for k in range(window)]
                wrong = sum(f.result() for f in loops)
            seconds = time.monotonic() - started
            cpu_used = self.cpu.since(cpu)
        finally:
            for client in extra:
                client.close()
        ends.sort()
        low, high = count // 10, count - 1 - count // 10
        span = ends[high] - ends[low]
        # between the 10th and 90th percentile of the ends, when the window turned over twice
        steady = (high - low) / span if count >= 2 * window and span > 0 else None
        p50, p95 = (nearest_rank(durations, f) * 1000 for f in (0.5, 0.95))
        result = {
            "sustained_workflows": count,
            "sustained_steps": count * steps,
            "sustained_window": window,
            "sustained_seconds": round(seconds, 3),
            "sustained_steps_per_s": round(count * steps / seconds, 1),
            "sustained_workflows_per_s": round(count / seconds, 1),
            "sustained_steady_workflows_per_s": steady and round(steady, 1),
            "sustained_p50_ms": round(p50, 1),
            "sustained_p95_ms": round(p95, 1),
            "sustained_results_ok": len(durations) - wrong,
            "sustained_cpu_ms_per_step_by_process": per_unit(cpu_used, count * steps),
        }
        row(f"(f) {count:,} workflows x {steps} tasks, <= {window} in flight", "")
        row(
            "    throughput",
            f"{count * steps / seconds:,.0f} steps/s, {count / seconds:,.1f} workflows/s "
            f"({seconds:.2f} s; steady: "
            + (f"{steady:,.1f} workflows/s)" if steady else "n/a, N < 2 x window)"),
        )
        row("    workflow duration p50, p95", f"{p50:,.0f} ms, {p95:,.0f} ms")
        by_process = result["sustained_cpu_ms_per_step_by_process"]
        row("    CPU ms per step", ", ".join(f"{n} {ms}" for n, ms in by_process.items()))
        return result

    # -- (g) ---------------------------------------------------------------------------------

    def flat(self, sizes: tuple[int, ...]) -> dict[str, Any]:
        ms_per_step: dict[str, float] = {}
        engine_cpu: dict[str, float] = {}
        for steps in sizes:
            runs = []
            for _ in range(FLAT_RUNS if steps <= FLAT_REPEAT_MAX else 1):
                cpu = self.cpu.read()
                started = time.monotonic()
                deadline = started + TIMEOUT_S + steps * 0.1
                result = self.wait(self.client.dispatch(Chain.run, steps), deadline)
                if result != steps:
                    raise RuntimeError(f"(g) {steps} steps: expected {steps}, got {result!r}")
                runs.append((time.monotonic() - started, self.cpu.since(cpu)))
            seconds, cpu_used = sorted(runs, key=lambda run: run[0])[(len(runs) - 1) // 2]
            ms_per_step[str(steps)] = round(seconds * 1000 / steps, 3)
            engine_cpu[str(steps)] = per_unit(cpu_used, steps).get("engine", 0.0)
            row(
                f"(g) 1 workflow x {steps:,} tasks",
                f"{ms_per_step[str(steps)]:.2f} ms/step ({seconds:.2f} s, median of {len(runs)};"
                f" engine CPU {engine_cpu[str(steps)]:.3f} ms/step)",
            )
        base = 50 if 50 in sizes else min(sizes)
        largest = max(sizes)
        ratio = round(ms_per_step[str(largest)] / ms_per_step[str(base)], 3)
        row(f"    {largest:,} vs {base:,} steps, per step", f"{ratio:.2f} x (aims at <= 1.2)")
        return {
            "flat_ms_per_step": ms_per_step,
            "flat_engine_cpu_ms_per_step": engine_cpu,
            "flat_base_steps": base,
            "flat_largest_steps": largest,
            "flat_largest_vs_base": ratio,
            f"flat_{largest}_vs_{base}": ratio,
        }


def run(settings: Settings, work_dir: Path) -> dict[str, Any]:
    note(f"namespace {settings.namespace} on {settings.bootstrap}, phases {settings.phases}")
    note("starting the engine and the service worker, each in its own process")
    scale = Scale(settings, work_dir)
    result: dict[str, Any] = {}
    try:
        scale.warm_up()
        row("measure", "value")
        if "e" in settings.phases:
            result.update(scale.signals(settings.signal_workflows))
        if "f" in settings.phases:
            result.update(scale.sustained(settings.sustained_workflows, settings.steps))
        if "g" in settings.phases:
            result.update(scale.flat(settings.flat_steps))
        if "h" in settings.phases:
            result.update(scale.signals(settings.signal_workflows, settings.branches))
        rss_mb = scale.cpu.peak_rss_mb()
    finally:
        scale.close()
    row("peak RSS (MiB)", ", ".join(f"{n} {mb}" for n, mb in rss_mb.items()))
    return {
        **result,
        "phases": list(settings.phases),
        "quick": settings.quick,
        "rss_mb": rss_mb,
        "partitions": PARTITIONS,
        "concurrency": settings.concurrency,
        "namespace": settings.namespace,
        "bootstrap": settings.bootstrap,
    }


def clean_up(settings: Settings) -> None:
    """Delete the run's topics and consumer groups (best effort: report, do not raise)."""
    topics, groups = delete_namespace(settings.kafka, settings.namespace, log)
    note(f"deleted {len(topics)} topics and {len(groups)} consumer groups of {settings.namespace}")


def parse_settings(argv: list[str] | None = None) -> tuple[Settings, bool]:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 5 min)")
    parser.add_argument("--only", default="e,f,g,h", help="phases to run, e.g. e,g (e,f,g,h)")
    parser.add_argument("--signal-workflows", type=int, help="(e): workflows waiting (10,000)")
    parser.add_argument("--sustained-workflows", type=int, help="(f): workflows (2,000)")
    parser.add_argument("--steps", type=int, default=10, help="(f): tasks per workflow (10)")
    parser.add_argument("--window", type=int, default=200, help="(f): most in flight (200)")
    parser.add_argument("--clients", type=int, default=4, help="(f): clients sharing it (4)")
    parser.add_argument("--flat-steps", help="(g): tasks of each workflow (1,50,1000,10000)")
    parser.add_argument("--branches", type=int, default=20, help="(h): per workflow (20)")
    parser.add_argument("--signal-threads", type=int, default=64, help="(e): senders (64)")
    parser.add_argument("--dispatchers", type=int, default=16, help="dispatching threads (16)")
    parser.add_argument("--concurrency", type=int, default=16, help="service worker tasks (16)")
    parser.add_argument("--verbose", action="store_true", help="show the runtime's log")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    phases = tuple(p.strip() for p in args.only.split(",") if p.strip())
    if not phases or set(phases) - {"e", "f", "g", "h"}:
        parser.error(f"--only takes phases among e, f, g, h: {args.only!r}")
    flat_steps = tuple(int(s) for s in (args.flat_steps or sizes["flat_steps"]).split(","))
    settings = Settings(
        bootstrap=args.bootstrap,
        namespace=f"bench-scale-{uuid.uuid4().hex[:8]}",
        phases=phases,
        signal_workflows=args.signal_workflows or sizes["signal_workflows"],
        sustained_workflows=args.sustained_workflows or sizes["sustained_workflows"],
        steps=args.steps,
        window=args.window,
        clients=max(1, args.clients),
        flat_steps=flat_steps,
        signal_threads=args.signal_threads,
        branches=max(1, args.branches),
        dispatchers=args.dispatchers,
        concurrency=args.concurrency,
        quick=args.quick,
    )
    return settings, args.verbose


def main(argv: list[str] | None = None) -> None:
    settings, verbose = parse_settings(argv)
    run_benchmark(settings, verbose, run, clean_up)


if __name__ == "__main__":
    main()
