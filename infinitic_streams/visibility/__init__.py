"""The visibility index: workflows listed and counted by name, status and tag, built from the
events topic by a processor on the stream runtime (`processor.py`, logic in `index.py`)."""
