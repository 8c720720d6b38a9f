"""The README's Python snippet runs as it is written (only its Kafka address and namespace
changed), on the real broker: a new user's first script must work every time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Workflows in Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "no python block under 'Workflows in Python'"
    return match.group(1)


def test_the_readme_snippet_runs(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    code = readme_snippet()
    assert '"127.0.0.1:9092"' in code and '"readme"' in code
    code = code.replace('"127.0.0.1:9092"', f'"{kafka_bootstrap}"')
    code = code.replace('"readme"', f'"{namespace}"')
    (tmp_path / "snippet.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "saved 3 images for me@example.com" in done.stdout
    assert done.stdout.strip().endswith("COMPLETED")
    assert "worker starting" in done.stderr  # logging.basicConfig shows the worker's story
    assert (tmp_path / ".infinitic" / "state").is_dir()
