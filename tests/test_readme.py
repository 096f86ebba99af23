"""Every Python block of the README runs as written, in a fresh process with JAX's defaults (no
``JAX_*`` variables; the session's ``XLA_FLAGS``, i.e. its compile flags, kept).

A block preceded by ``<!-- slow -->`` is marked slow (run with ``-m slow``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks():
    text = README.read_text()
    found = []
    for match in re.finditer(r"(<!-- slow -->\s*)?```python\n(.*?)```", text, flags=re.S):
        line = text[: match.start()].count("\n") + 1
        marks = [pytest.mark.slow] if match.group(1) else []
        found.append(pytest.param(match.group(2), id=f"line{line}", marks=marks))
    return found


def test_the_readme_has_python_blocks():
    assert len(blocks()) >= 3


@pytest.mark.parametrize("code", blocks())
def test_readme_block_runs(code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
