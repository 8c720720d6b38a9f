"""What benchmarks/workflows.py prints before its JSON line: a row per run, the targets, the
per-step latencies and the CPU and memory by process.

The scripts run as `python benchmarks/X.py`, which puts this folder on sys.path: workflows.py
imports this module as `report`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows import Measurement

Targets = dict[str, tuple[str, float]]  # measure -> (">=" or "<=", goal)


def print_header() -> None:
    """The header of the table of runs."""
    print(
        f"{'phase':<22} {'workflows':>9} {'steps':>7} {'seconds':>8} {'steps/s':>8} "
        f"{'ms/step':>8} {'txns':>6} {'ms/txn':>7} {'cpu ms/step':>11}",
        flush=True,
    )


def print_row(measured: Measurement) -> None:
    """One run: its size, time, rate, engine transactions and CPU per step."""
    print(
        f"{measured.phase:<22} {measured.workflows:>9,} {measured.steps:>7,} "
        f"{measured.seconds:>8.3f} {measured.steps_per_s:>8,.0f} {measured.ms_per_step:>8.2f} "
        f"{measured.transactions:>6,} {measured.ms_per_commit:>7.2f} "
        f"{measured.cpu_ms_per_step:>11.3f}",
        flush=True,
    )


def print_targets(result: dict[str, Any], targets: Targets) -> None:
    """Each target, its measure and whether it is met (reported, not asserted)."""
    print("\ntarget                     measured      aims at   floor", flush=True)
    floors = {
        "steps_per_s": result["floor_steps_per_s"],
        "ms_per_step": result["floor_ms_per_step"],
    }
    for key, (direction, goal) in targets.items():
        value = result[key]
        met = value >= goal if direction == ">=" else value <= goal
        floor = f"{floors[key]:>7,.1f}" if key in floors else ""
        print(
            f"{key:<24} {value:>10,.2f} {direction} {goal:>8,.1f}   {floor:<7} "
            f"{'ok' if met else 'MISSED'}",
            flush=True,
        )


def print_latencies(result: dict[str, Any]) -> None:
    """Per-step latency of the sequential measures, side by side: the mean of the median run
    (total / steps), p50 and p95 of the step intervals, and the mean's ratios."""
    print(
        f"\n{'per step (ms)':<24} {'mean':>7} {'p50':>7} {'p95':>7} {'vs task':>8} {'vs floor':>8}",
        flush=True,
    )
    rows = [
        ("(b) task step", "ms_per_step", "task_step"),
        ("(e) signal round trip", "signal_ms_per_step", "signal"),
        ("(f) child round trip", "child_ms_per_step", "child"),
        ("floor (i) round trip", "floor_ms_per_step", "floor"),
        ("plain floor round trip", "plain_floor_ms_per_step", "plain_floor"),
    ]
    for label, mean_key, prefix in rows:
        mean = result[mean_key]
        print(
            f"{label:<24} {mean:>7.2f} {result[prefix + '_p50_ms']:>7.2f} "
            f"{result[prefix + '_p95_ms']:>7.2f} {mean / result['ms_per_step']:>8.2f} "
            f"{mean / result['floor_ms_per_step']:>8.2f}",
            flush=True,
        )


def print_resources(result: dict[str, Any]) -> None:
    """CPU per step of (a) by process, and each process's peak resident set."""
    print(
        f"\nlayout {result['layout']}: (a) {result['cpu_ms_per_step']:.3f} CPU ms per step "
        f"(exactly-once floor {result['floor_cpu_ms_per_step']:.3f}, "
        f"plain floor {result['plain_floor_cpu_ms_per_step']:.3f})",
        flush=True,
    )
    for name, ms in result["cpu_ms_per_step_by_process"].items():
        rss = result["rss_mb"].get(name)
        print(f"  {name:<8} {ms:>7.3f} CPU ms/step  peak RSS {rss or 0:>7.1f} MiB", flush=True)
