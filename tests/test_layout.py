"""The import rules of docs/ARCHITECTURE.md, checked on the source: only `kafka/` talks to
confluent_kafka, and the engine's and the workflows' logic never reach Kafka."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "infinitic_streams"
PURE = ("engine", "workflows", "definitions.py", "payload.py", "protocol", "errors.py", "topics.py")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(*parts: str) -> list[Path]:
    found = []
    for part in parts:
        target = PACKAGE / part
        found += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return found


def test_only_the_kafka_package_imports_confluent_kafka() -> None:
    outside = [
        str(path.relative_to(PACKAGE))
        for path in modules(".")
        if path.relative_to(PACKAGE).parts[0] != "kafka"
        and any(name.split(".")[0] == "confluent_kafka" for name in imports(path))
    ]
    assert outside == []


def test_engine_and_workflow_logic_never_import_kafka() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules(*PURE)
        for name in imports(path)
        if name.split(".")[0] == "confluent_kafka" or name.startswith("infinitic_streams.kafka")
    ]
    assert offenders == []


def test_the_stream_runtime_does_not_know_the_workflow_protocol() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules("streams")
        for name in imports(path)
        if name.startswith(("infinitic_streams.protocol", "infinitic_streams.engine"))
    ]
    assert offenders == []


def test_the_client_never_imports_the_engine() -> None:
    """What client and engine share (history events, answers) is in `protocol/`."""
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules("client")
        for name in imports(path)
        if name.startswith(("infinitic_streams.engine", "infinitic_streams.streams"))
    ]
    assert offenders == []


def test_the_pure_workflow_modules_never_import_the_engine() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules("workflows", "protocol")
        for name in imports(path)
        if name.startswith(("infinitic_streams.engine", "infinitic_streams.streams"))
    ]
    assert offenders == []
