"""examples/versioning.py on the real broker, run as its docstring says (`python -m
examples.versioning`): a subscription started with the old code crosses a deploy on its old
path and its next runs take the new one; the README's snippet is an excerpt of the example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = "### Versioning and continue-as-new"


def test_the_example_runs_as_documented(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "examples.versioning", "-n", namespace]
    command += ["--bootstrap", kafka_bootstrap, "--state-dir", str(tmp_path / "state")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    old = "['charged acme for period 1', 'charged acme for period 2 (mailed)', "
    assert old + "'charged acme for period 3 (mailed)']" in done.stdout
    assert re.search(r"acme-\w+: run 3, patches of its last run: \['mail-receipts'\]", done.stdout)
    [(periods, run)] = re.findall(r"zeta-\w+: (\d+) periods billed, run (\d+)", done.stdout)
    assert periods == run and int(periods) < 12  # canceled, one run per period
    assert re.search(r"charged zeta for period \d+ \(mailed\)", done.stdout)


def test_the_readme_snippet_is_the_example_s_code() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{HEADING}")
    section = text[start : text.index("\n#", start + 1)]
    [block] = re.findall(r"```python\n(.*?)```", section, re.S)
    source = (ROOT / "examples" / "versioning.py").read_text()
    for part in block.split("\n\n"):
        lines = [line for line in part.splitlines() if line.strip() != "..."]
        excerpt = textwrap.dedent("\n".join(lines)).strip("\n")
        indented = [textwrap.indent(excerpt, " " * n) for n in (0, 4, 8)]
        assert any(e in source for e in indented), f"not in examples/versioning.py:\n{excerpt}"
