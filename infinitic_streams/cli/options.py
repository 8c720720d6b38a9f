"""The options every command shares, named as in kubectl and temporal: `--namespace/-n`,
`--bootstrap`, `--config/-c`, `--output/-o`, `--log-level`, `--log-format` (and `-h`).

A client command needs no configuration file: `--bootstrap` (or $INFINITIC_KAFKA) and
`--namespace` say where to look. When the file exists, these options override it."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_CONFIG = Path("infinitic.toml")

ConfigPath = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="INFINITIC_CONFIG",
        metavar="PATH",
        help="The configuration file. `module:Class` references in it are imported with its "
        "directory and the current directory on the Python path.",
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        envvar="INFINITIC_NAMESPACE",
        metavar="NAME",
        help="The namespace (prefix of its topics); default: the configuration's, else default.",
    ),
]
Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers; default: $INFINITIC_KAFKA, else the configuration's.",
    ),
]


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


Output = Annotated[
    Format,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table (for people), json or yaml (for programs: fields stay stable).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", hidden=True, help="Same as -o json.")]


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


LogLevel = Annotated[
    str,
    typer.Option(
        metavar="LEVEL",
        help="Logging level: DEBUG, INFO, WARNING or ERROR.",
        case_sensitive=False,
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(metavar="FORMAT", help="Log lines as text, or as one JSON object each."),
]


def output_of(output: Format, json_flag: bool) -> Format:
    return Format.JSON if json_flag else output


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Set up the root logger once for this command (stderr)."""
    from infinitic_streams import logs

    try:
        logs.configure(level, fmt.value)
    except ValueError:
        typer.secho(f"--log-level {level}: use {', '.join(logs.LEVELS)}", fg="red", err=True)
        raise typer.Exit(1) from None


def explicit_config(path: Path) -> bool:
    """Whether the user named the file (then it must exist)."""
    return path != DEFAULT_CONFIG or bool(os.environ.get("INFINITIC_CONFIG"))


__all__ = [
    "DEFAULT_CONFIG",
    "Bootstrap",
    "ConfigPath",
    "Format",
    "JsonFlag",
    "LogFormat",
    "LogFormatOption",
    "LogLevel",
    "Namespace",
    "Output",
    "configure_logging",
    "explicit_config",
    "output_of",
]
