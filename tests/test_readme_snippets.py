"""Every Python block in README.md runs as written (in a fresh process, in a temporary folder, on one thread), so
the README's "from Python" section cannot drift from the API."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from facegen_cli.paths import weights_dir

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    found = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert found, "README.md has no ```python block"
    return found


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_python_block_runs(index, tmp_path) -> None:
    if not (weights_dir() / "default.safetensors").is_file():
        pytest.skip("the shipped model is missing")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", blocks()[index]], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.iterdir()), "the block wrote nothing"
