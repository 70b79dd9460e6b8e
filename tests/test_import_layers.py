"""The import contract (.importlinter): every import between kdcc's packages points down a layer.

ir/, passes/ and targets/ install as kdcc.ir, kdcc.passes and kdcc.targets; the symlinks kdcc/ir,
kdcc/passes and kdcc/targets lay the source tree out the same way, so `lint-imports` runs on it as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lint(root: Path) -> subprocess.CompletedProcess:
    linter = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(linter), "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def test_every_import_points_down_a_layer():
    run = lint(REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(REPO / "kdcc", tmp_path / "kdcc", ignore=shutil.ignore_patterns("__pycache__"))  # links followed
    errors = tmp_path / "kdcc" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom kdcc.passes.base import Budget  # noqa: E402,F401\n")
    run = lint(tmp_path)
    assert run.returncode != 0
    assert "kdcc.core.errors -> kdcc.passes.base" in run.stdout
