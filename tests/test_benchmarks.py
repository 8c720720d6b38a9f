"""The benchmarks still run (`make bench`): tiny sizes, checking only that each finishes and
reports its results. Speed itself is never asserted in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(script: str, bootstrap: str, *options: str) -> dict[str, float]:
    command = [
        sys.executable,
        f"benchmarks/{script}",
        "--quick",
        "--bootstrap",
        bootstrap,
        *options,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_streams_benchmark_reports_runtime_floor_and_restore(kafka_bootstrap: str) -> None:
    result = run_benchmark(
        "streams.py",
        kafka_bootstrap,
        "--messages",
        "3000",
        "--keys",
        "50",
        "--restore-keys",
        "3000",
    )
    for key in (
        "runtime_msgs_per_s",
        "floor_msgs_per_s",
        "ratio_to_floor",
        "restore_records_per_s",
    ):
        assert result[key] > 0, key


TINY_WORKFLOWS = (
    "--workflows", "10", "--steps", "3", "--short-steps", "5", "--fanout", "10",
    "--long-steps", "20", "--signal-steps", "5", "--child-steps", "5",
)  # fmt: skip


def check_workflows_result(result: dict[str, Any], layout: str, processes: set[str]) -> None:
    for key in (
        "steps_per_s",
        "ms_per_step",
        "fanout_200_ms",
        "long_vs_short_per_step",
        "floor_steps_per_s",
        "floor_ms_per_step",
        "plain_floor_ms_per_step",
        "plain_floor_steps_per_s",
        "signal_ms_per_step",
        "child_ms_per_step",
        "signal_ratio_to_floor",
        "child_ratio_to_floor",
        "signal_vs_task_step",
        "child_vs_task_step",
        "cpu_ms_per_step",
    ):
        assert result[key] > 0, key
    for measure in ("task_step", "signal", "child", "floor", "plain_floor"):  # 0 ms may occur
        for key in (f"{measure}_p50_ms", f"{measure}_p95_ms"):
            assert isinstance(result[key], int | float) and result[key] >= 0, key
        assert result[f"{measure}_p95_ms"] >= result[f"{measure}_p50_ms"], measure
    assert result["layout"] == layout
    # the broker is measured when it runs on this machine, as the tests' broker does
    assert set(result["rss_mb"]) in (processes, processes | {"broker"}), result["rss_mb"]
    for name, rss in result["rss_mb"].items():
        assert isinstance(rss, int | float) and 10 < rss < 100_000, (name, rss)
    by_process = result["cpu_ms_per_step_by_process"]
    assert set(by_process) == set(result["rss_mb"])
    assert all(ms >= 0 for ms in by_process.values())


def test_workflows_benchmark_reports_every_measure(kafka_bootstrap: str) -> None:
    result = run_benchmark("workflows.py", kafka_bootstrap, *TINY_WORKFLOWS)
    check_workflows_result(result, "single", {"process"})


def test_workflows_benchmark_runs_the_deployed_layout(kafka_bootstrap: str) -> None:
    """Engine, service worker and client each in its own process."""
    result = run_benchmark(
        "workflows.py", kafka_bootstrap, "--layout", "processes", *TINY_WORKFLOWS
    )
    check_workflows_result(result, "processes", {"engine", "worker", "client"})


def test_visibility_benchmark_reports_list_count_and_floor(kafka_bootstrap: str) -> None:
    result = run_benchmark("visibility.py", kafka_bootstrap, "--workflows", "200", "--repeat", "3")
    assert result["problems"] == []
    assert result["workflows"] == 200
    assert sum(result["counts_by_status"].values()) == 200
    for measure in (
        "list",
        "list_filtered",
        "count",
        "count_by_status",
        "page",
        "floor",
        "floor_sequential",
    ):
        assert result[f"{measure}_p50_ms"] > 0, measure
        assert result[f"{measure}_p95_ms"] >= result[f"{measure}_p50_ms"], measure
    for key in ("list_ratio_to_floor", "count_ratio_to_floor", "fill_workflows_per_s"):
        assert result[key] > 0, key
    assert result["pages"] >= 1
    assert result["list_keys_read_max"] > 0 and result["count_keys_read"] > 0
    assert result["engine_caught_up_s"] >= 0 and result["index_caught_up_s"] >= 0


def test_scale_benchmark_reports_signals_sustained_flat_and_branches(
    kafka_bootstrap: str,
) -> None:
    """Engine, service worker and client each in its own process, tiny sizes."""
    result = run_benchmark(
        "scale.py",
        kafka_bootstrap,
        "--signal-workflows", "20", "--sustained-workflows", "20", "--steps", "2",
        "--window", "5", "--clients", "2", "--flat-steps", "1,5", "--branches", "3",
    )  # fmt: skip
    assert result["phases"] == ["e", "f", "g", "h"]
    # (e): every workflow waited, got its signal and ended with the right result
    assert result["signal_workflows"] == result["signal_results_ok"] == 20
    assert result["signals_per_s"] > 0 and result["signal_all_seconds"] > 0
    # (VmHWM lags VmRSS: Linux syncs a thread's RSS counters now and then, so no order here)
    assert 10 < result["engine_rss_mb_waiting"] < 100_000
    assert 10 < result["engine_peak_rss_mb"] < 100_000
    assert result["engine_threads_waiting"] >= result["engine_python_threads_waiting"] >= 1
    assert sum(result["engine_thread_names_waiting"].values()) > 0
    # (f)
    assert result["sustained_workflows"] == result["sustained_results_ok"] == 20
    assert result["sustained_window"] == 5
    for key in ("sustained_steps_per_s", "sustained_workflows_per_s", "sustained_p50_ms"):
        assert result[key] > 0, key
    assert result["sustained_p95_ms"] >= result["sustained_p50_ms"]
    # (g)
    assert set(result["flat_ms_per_step"]) == {"1", "5"}
    assert all(ms > 0 for ms in result["flat_ms_per_step"].values())
    assert result["flat_base_steps"] == 1 and result["flat_largest_steps"] == 5
    assert result["flat_5_vs_1"] == result["flat_largest_vs_base"] > 0
    # (h): 3 branches per workflow wait on receive(); one takes the signal, the workflow ends
    assert result["branches"] == 3
    assert result["branches_signal_workflows"] == result["branches_signal_results_ok"] == 20
    assert result["branches_engine_threads_waiting"] >= 1
    assert set(result["rss_mb"]) >= {"client", "engine", "worker"}
