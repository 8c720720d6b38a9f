"""examples/schedules.py on the real broker, run as its docstring says, and the README's
`### Schedules` snippet is the example's code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.kafka
def test_the_module_runs(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "examples.schedules", "--bootstrap", kafka_bootstrap]
    command += ["-n", namespace, "--state-dir", str(tmp_path / "state")]
    env = {k: v for k, v in os.environ.items() if k != "INFINITIC_KAFKA"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    fired = re.search(r"^(reports-\w+) fired (\d+) times$", done.stdout, re.M)
    assert fired is not None and int(fired.group(2)) >= 3, done.stdout
    schedule_id = fired.group(1)
    listed = re.search(rf"^{schedule_id} \*/2 \* \* \* \* \* False ({schedule_id}@\S+Z)$",
                       done.stdout, re.M)  # fmt: skip
    assert listed is not None, done.stdout
    assert re.search(rf"^report of platform for {schedule_id}@\d{{4}}-\S+Z$", done.stdout, re.M)


def test_the_readme_snippet_is_the_example_s_code() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n### Schedules")
    assert text.index("\n## The command line") > start  # right before it
    section = text[start : text.index("\n#", start + 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks
    source = (ROOT / "examples" / "schedules.py").read_text()
    for block in blocks:
        for part in block.split("\n\n"):
            excerpt = textwrap.dedent(part).strip("\n")
            if excerpt:
                indented = [textwrap.indent(excerpt, " " * n) for n in (0, 4, 8)]
                assert any(e in source for e in indented), f"not in the example:\n{excerpt}"
