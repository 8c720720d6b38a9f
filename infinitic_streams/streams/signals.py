"""SIGTERM and SIGINT ask a running process to stop, with no work in the signal handler.

A Python signal handler runs in the main thread between two of its bytecodes, possibly while
that thread holds a lock the handler would take: `threading.Event.set()` takes the lock of the
event's condition, which the main thread holds for a moment in `Event.wait()`. A handler that
sets an event can therefore deadlock the very process it is meant to stop. The handler here
only writes a byte to a pipe; a thread of its own reads it and calls `stop`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call `stop()` (from another thread); the previous
    handlers come back on exit. Outside the main thread (where Python cannot take signals)
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    watcher = threading.Thread(
        target=_watch, args=(read_end, stop), name="stop signals", daemon=True
    )
    watcher.start()

    def handler(_signum: int, _frame: object) -> None:
        os.write(write_end, b"s")  # no lock taken: safe wherever the main thread is

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(write_end)  # the watcher reads the end of the pipe and returns


def _watch(read_end: int, stop: Callable[[], None]) -> None:
    try:
        while os.read(read_end, 1):
            stop()
    finally:
        os.close(read_end)
