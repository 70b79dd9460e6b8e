"""Pass-test fixtures: golden graph text (regenerated only on purpose) and a tiny teacher's program.

A golden file is the stable text (`kdcc.ir.printer.program_text`) a pass is
expected to produce. Tests compare it exactly; when a change to a pass or to
the printer is intended, regenerate with

    KDCC_UPDATE_GOLDEN=1 pytest tests/passes

and review the diff of tests/passes/golden/ like any other change.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from kdcc.inputs.teacher import load_teacher
from kdcc.ir.program import Program, from_modules
from kdcc.passes import PassContext
from kdcc.targets.profile import load_profile
from tests.conftest import make_tiny_teacher

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_ENV = "KDCC_UPDATE_GOLDEN"


@pytest.fixture
def golden():
    """`golden(name, text)`: assert `text` equals tests/passes/golden/<name>.txt (or rewrite it)."""

    def check(name: str, text: str) -> None:
        __tracebackhide__ = True
        path = GOLDEN_DIR / f"{name}.txt"
        if os.environ.get(UPDATE_ENV) == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.exists():
            pytest.fail(f"{path}: missing golden file (create it with {UPDATE_ENV}=1)")
        expected = path.read_text()
        if text != expected:
            diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                str(path), "actual"))
            pytest.fail(f"graph text differs from {path} (if intended, regenerate with {UPDATE_ENV}=1):\n{diff}")

    return check


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return load_teacher(make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny.pt"))


@pytest.fixture
def program(teacher) -> Program:
    return from_modules(teacher.spec, teacher.agent, teacher.mixer)


@pytest.fixture(scope="module")
def ctx(teacher) -> PassContext:
    return PassContext(teacher=teacher, profile=load_profile("orin"))
