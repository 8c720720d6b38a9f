"""The workflow engine: a processor on the stream runtime that keeps each workflow's state and
history, runs its code, and dispatches its tasks and timers."""
