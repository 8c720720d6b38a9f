"""`python -m infinitic_streams` is the `infinitic-streams` command."""

from infinitic_streams.cli.app import main

main()
