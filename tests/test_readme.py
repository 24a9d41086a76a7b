"""Every Python block of the README runs as written, on a fresh store, offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import DATA_DIR, needs_data

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert python_blocks(), "the README's Python section is gone"


@needs_data("sst2/sst2_dev.tsv")
def test_every_python_block_runs(tmp_path):
    for n, block in enumerate(python_blocks()):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "CE_DATA_DIR": str(DATA_DIR)}
        env.pop("CE_STORE", None)
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"README Python block {n + 1} failed:\n{block}\n{done.stderr[-3000:]}"
