"""`compile --keep`: the search over prune's ladder on a tiny teacher (two rungs on host: widths 16 and 32).

The teacher (seed 3) beats the uniform random policy on the held-out seeds, so
the normalised score is defined; its students keep it at both widths.
"""

import json

import pytest

from kdcc.core.errors import KdccError
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.flow.keep import bisect_ladder
from kdcc.passes import Budget
from tests.conftest import FAST, make_tiny_teacher


def _opts(keep, workers, **kw):
    return CompileOptions(budget=Budget(ratio=1.0), collect_episodes=4, options=dict(FAST), keep=keep,
                          keep_episodes=5, keep_workers=workers, certify_episodes=0, **kw)


@pytest.fixture
def teacher(tmp_path):
    return make_tiny_teacher(tmp_path / "t.pt", seed=3, hidden=32, hypernet_embed=32)


def test_bisection_scores_few_rungs_and_the_step_either_side():
    evaluated = []

    def evaluate(idx):
        evaluated.extend(idx)
        return [i >= 5 for i in idx]

    assert sorted(bisect_ladder(16, 1, evaluate)) == [3, 4, 5, 6, 7]
    for k in (1, 2, 3):  # the boundary is found however many rungs a round scores
        seen = bisect_ladder(16, k, lambda idx: [i >= 11 for i in idx])
        assert {10, 11, 12} <= set(seen) and len(seen) < 16
    assert bisect_ladder(4, 2, lambda idx: [False] * len(idx))[-1] == 3  # nothing keeps: the widest was tried


def test_keep_zero_takes_the_cheapest_width_the_same_in_parallel_and_in_sequence(teacher, tmp_path):
    out = compile_teacher(str(teacher), "host", tmp_path / "b", _opts(0.0, 2), build=False)
    search = out.keep
    assert search["ladder"] == [16, 32] and search["chosen"]["width"] == 16 and search["workers"] == 2
    prune = next(r for r in out.result.records if r.name == "prune")
    assert prune.decisions["width"] == 16 and prune.decisions["keep"]["chosen"] == search["chosen"]
    assert [r.index for r in out.result.records] == list(range(len(out.result.records)))
    assert len(search["distill_seeds"]["scores"]) == 3 and search["distill_seeds"]["seeds"] == [0, 1, 2]
    report = (tmp_path / "b" / "report.md").read_text()
    assert "Keep the score (--keep)" in report
    for p in search["points"]:  # every evaluated point is a row of the section's table
        assert f"rnn {p['width']}" in report and p["score"] - p["se"] >= 0.0
    assert json.loads((tmp_path / "b" / "keep.json").read_text())["chosen"]["width"] == 16
    seq = compile_teacher(str(teacher), "host", None, _opts(0.0, 1), build=False).keep
    assert seq["chosen"] == search["chosen"]
    assert {p["width"]: p["score"] for p in seq["points"]} == {p["width"]: p["score"] for p in search["points"]}


def test_an_unkeepable_fraction_is_one_line_naming_the_best_score(teacher, capsys):
    from kdcc.cli.app import main

    opts = [a for k, v in FAST.items() for a in ("--opt", f"{k}={v}")]
    argv = ["compile", str(teacher), "--target", "host", "--budget-flops", "1x", "--keep", "10",
            "--keep-episodes", "4", "-q", *opts]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--keep 10: no student keeps" in err and "best: 1.000" in err


def test_keep_needs_prune_then_distill(teacher):
    with pytest.raises(KdccError, match="--keep searches prune widths"):
        compile_teacher(str(teacher), "host", None, _opts(0.5, 1, pipeline="exact"), build=False)
