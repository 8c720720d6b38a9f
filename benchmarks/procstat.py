"""CPU time, memory and threads of processes, from /proc (Linux): what benchmarks/workflows.py
and benchmarks/scale.py report per process, the broker's included.

The scripts run as `python benchmarks/X.py`, which puts this folder on sys.path: they import
this module as `procstat`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # TCP state in /proc/net/tcp*
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "[::1]"}


def clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of the process (all its threads) so far; None if it is gone.
    Resolution: one clock tick (10 ms)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # comm, field 2, may hold spaces and parentheses: the fields after it follow the last ')'
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / clock_ticks()


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB; None if it is gone or unknown."""
    return memory_and_threads(pid)["peak_rss_mb"]


def status_fields(pid: int) -> dict[str, str]:
    """The fields of /proc/<pid>/status (e.g. "VmRSS": "123456 kB", "Threads": "42"); empty
    if the process is gone."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return {}
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def memory_and_threads(pid: int) -> dict[str, float | int | None]:
    """rss_mb (VmRSS) and peak_rss_mb (VmHWM) in MiB, and threads (OS threads) now."""
    fields = status_fields(pid)

    def mib(key: str) -> float | None:
        value = fields.get(key)
        return round(int(value.split()[0]) / 1024, 1) if value else None  # in kB

    threads = fields.get("Threads")
    return {
        "rss_mb": mib("VmRSS"),
        "peak_rss_mb": mib("VmHWM"),
        "threads": int(threads) if threads else None,
    }


def thread_names(pid: int) -> dict[str, int]:
    """How many OS threads of the process bear each name (/proc/<pid>/task/*/comm, at most 15
    characters: librdkafka and RocksDB name theirs; Python before 3.14 leaves its threads
    with the process's name)."""
    names: dict[str, int] = {}
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return names
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # ended meanwhile
            continue
        names[name] = names.get(name, 0) + 1
    return dict(sorted(names.items(), key=lambda item: (-item[1], item[0])))


class CpuMeter:
    """CPU seconds of named processes between two readings."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def read(self) -> dict[str, float]:
        """Each live process's CPU seconds so far."""
        readings = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return {name: value for name, value in readings.items() if value is not None}

    def since(self, before: Mapping[str, float]) -> dict[str, float]:
        """CPU seconds per process since `before` (a `read()`), for those in both."""
        now = self.read()
        return {name: now[name] - before[name] for name in before if name in now}

    def peak_rss_mb(self) -> dict[str, float | None]:
        return {name: peak_rss_mb(pid) for name, pid in self.pids.items()}


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def listener_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP `port`, if this user can see it."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in sockets:
                    return int(entry.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the broker of the first bootstrap address when it runs on this machine."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if host not in LOCAL_HOSTS or not port.isdigit():
        return None
    return listener_pid(int(port))
