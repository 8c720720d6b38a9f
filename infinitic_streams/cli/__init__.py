"""The `infinitic-streams` command line (typer)."""
