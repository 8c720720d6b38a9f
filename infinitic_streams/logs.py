"""Placeholder until the logging module lands."""

from __future__ import annotations

import logging


def configure(level: str = "INFO", fmt: str = "text") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
