"""`check_pipeline_against_golden`: a regression test for a pass in a few lines.

    def test_my_pass(check_pipeline_against_golden):
        check_pipeline_against_golden(GOLDEN_TEACHER, upto="my-pass", golden="tests/golden/my-pass",
                                      dataset=GOLDEN_DATASET, options={"my-pass.steps": 20})

runs the named pipeline on the teacher up to and including the first
occurrence of `upto`, records every pass (as `kdcc compile --record` does)
and compares the record with the golden one as `kdcc check` does; the test
fails with the same report (first pass that diverges, graph diff, metric
table). Write or refresh golden snapshots on purpose with

    KDCC_UPDATE_GOLDEN=1 python -m pytest -q tests/test_regression.py

and review them like code. Training passes are deterministic on CPU for a
fixed seed with one torch thread (tests/conftest.py sets it).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["check_pipeline_against_golden", "UPDATE_ENV"]

REPO = Path(__file__).resolve().parents[1]
UPDATE_ENV = "KDCC_UPDATE_GOLDEN"


def _record_pipeline(teacher: str | Path, out: Path, *, upto: str | None, pipeline: str, target: str,
                     dataset: str | Path | None, seed: int, budget: Any, options: dict[str, Any] | None) -> None:
    from kdcc.flow.compile import compile_teacher
    from kdcc.flow.driver import CompileOptions
    from kdcc.passes import Budget
    from kdcc.passes.pipelines import pipeline as named_pipeline

    names = named_pipeline(pipeline)
    if upto is not None:
        if upto not in names:
            raise ValueError(f"upto={upto!r} is not a pass of pipeline {pipeline!r} ({', '.join(names)})")
        names = names[:names.index(upto) + 1]
    opts = CompileOptions(pipeline=pipeline, passes=names, budget=budget or Budget(), keep=None, seed=seed,
                          dataset=str(dataset) if dataset else None, options=dict(options or {}))
    compile_teacher(str(teacher), target, None, opts, record=out, build=False)


@pytest.fixture
def check_pipeline_against_golden(tmp_path):
    """`check(teacher, upto=, golden=, pipeline="default", target="orin", dataset=None, seed=0, budget=None,
    options=None, rtol=1e-4, atol=1e-5, metric_tol=1e-3)` -> the Comparison (fails the test on divergence)."""

    def check(teacher: str | Path, upto: str | None = None, golden: str | Path = "", *, pipeline: str = "default",
              target: str = "orin", dataset: str | Path | None = None, seed: int = 0, budget: Any = None,
              options: dict[str, Any] | None = None, rtol: float = 1e-4, atol: float = 1e-5,
              metric_tol: float = 1e-3):
        __tracebackhide__ = True
        from rich.console import Console

        from kdcc.core.errors import KdccError
        from kdcc.core.fileio import atomic_write_tree
        from kdcc.reports.check_report import render_comparison
        from kdcc.reports.record_compare import Tolerances, compare_records, load_record, record_tree

        if not golden:
            raise ValueError("golden= names the snapshot directory, e.g. tests/golden/my-pass")
        golden = Path(golden) if Path(golden).is_absolute() else REPO / golden
        record = tmp_path / f"record-{golden.name}"
        _record_pipeline(teacher, record, upto=upto, pipeline=pipeline, target=target, dataset=dataset,
                         seed=seed, budget=budget, options=options)
        if os.environ.get(UPDATE_ENV) == "1":
            atomic_write_tree(golden, record_tree(load_record(record)))
            return None
        if not (golden / "manifest.json").is_file():
            pytest.fail(f"{golden}: missing golden record (create it with {UPDATE_ENV}=1)")
        try:
            cmp, problem = compare_records(record, golden, Tolerances(rtol, atol, metric_tol)), ""
        except KdccError as e:  # e.g. a different pipeline: say so without a chained traceback
            cmp, problem = None, str(e)
        if cmp is None:
            pytest.fail(f"{problem}\n(if intended, regenerate with {UPDATE_ENV}=1)", pytrace=False)
        if cmp.first is not None:
            out = io.StringIO()
            console = Console(file=out, width=120, color_system=None, highlight=False, soft_wrap=True)
            render_comparison(cmp, console)
            pytest.fail(f"{out.getvalue()}\n(if intended, regenerate with {UPDATE_ENV}=1)", pytrace=False)
        return cmp

    return check
