"""`python -m examples`: the demo of `make demo`, in examples/demo.py (`--help`: its options).

Its imports take seconds on a busy machine; a Ctrl-C meanwhile ends it quietly too.
"""

import signal
import sys


def interrupted(*_: object) -> None:
    print("\nInterrupted.", flush=True)
    sys.exit(130)


def run() -> int:
    signal.signal(signal.SIGINT, interrupted)
    from examples.demo import main

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt again
    return main()


if __name__ == "__main__":
    sys.exit(run())
