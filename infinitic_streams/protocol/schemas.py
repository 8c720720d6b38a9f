"""The versioned Avro schemas of the envelope, found and parsed once.

Layout: `<schema root>/envelope/v1.avsc`, `v2.avsc`, ... The newest version is the one this build
writes; every older version stays so that envelopes written by older builds remain readable. The
schema root is the repository's `avro/` folder in a source checkout or editable install, else
`infinitic_streams/_avro` inside an installed wheel (hatch force-include copies it there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import fastavro

from infinitic_streams.protocol.errors import SchemaError

ParsedSchema: TypeAlias = dict[str, Any]

ENVELOPE_FOLDER = "envelope"
VERSION_FILE = re.compile(r"v([1-9][0-9]*)\.avsc")


def find_schema_root() -> Path:
    """The folder holding `envelope/vN.avsc`: the checkout's `avro/`, else the wheel's `_avro/`."""
    package = Path(__file__).resolve().parents[1]
    # Look for envelope/ inside, not just the folder: in site-packages, `avro/` is the PyPI package.
    for root in (package.parent / "avro", package / "_avro"):
        if (root / ENVELOPE_FOLDER).is_dir():
            return root
    raise SchemaError(
        f"no Avro schema folder found next to {package} (looked for avro/{ENVELOPE_FOLDER} and "
        f"_avro/{ENVELOPE_FOLDER}); reinstall infinitic-streams"
    )


def version_files(folder: Path) -> dict[int, Path]:
    """The `vN.avsc` files of `folder`, by version N."""
    files = {}
    for path in folder.glob("v*.avsc"):
        match = VERSION_FILE.fullmatch(path.name)
        if match:
            files[int(match.group(1))] = path
    return files


def _parse(path: Path) -> ParsedSchema:
    try:
        schema = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"cannot load Avro schema {path}: {exc}") from exc
    if not isinstance(schema, dict):
        raise SchemaError(f"Avro schema {path} must be a record, not {type(schema).__name__}")
    return schema


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """Every envelope schema version of one folder, parsed."""

    folder: Path
    by_version: Mapping[int, ParsedSchema]
    current_version: int

    @classmethod
    def load(cls, folder: Path) -> SchemaSet:
        """Parse every `vN.avsc` of `folder`; the highest N becomes the current version."""
        files = version_files(folder)
        if not files:
            raise SchemaError(f"no envelope schema (vN.avsc) in {folder}")
        schemas = {version: _parse(files[version]) for version in sorted(files)}
        return cls(folder, MappingProxyType(schemas), max(schemas))

    def writer_schema(self, version: int) -> ParsedSchema:
        """The schema that envelopes of header version `version` were written with."""
        try:
            return self.by_version[version]
        except KeyError:
            raise KeyError(f"no envelope schema v{version} in {self.folder}") from None

    def reader_schema(self) -> ParsedSchema:
        """The current schema, into which every older version is resolved when reading."""
        return self.by_version[self.current_version]


DEFAULT_SCHEMAS = SchemaSet.load(find_schema_root() / ENVELOPE_FOLDER)
CURRENT_VERSION = DEFAULT_SCHEMAS.current_version


def writer_schema(version: int) -> ParsedSchema:
    """The shipped schema of envelope version `version` (KeyError if this build lacks it)."""
    return DEFAULT_SCHEMAS.writer_schema(version)


def reader_schema() -> ParsedSchema:
    """The shipped current schema."""
    return DEFAULT_SCHEMAS.reader_schema()
