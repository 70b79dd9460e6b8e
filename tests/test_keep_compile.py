"""`compile --keep` (the default objective): the search over prune's rungs on a tiny teacher.

The teacher (seed 3) beats the uniform random policy on the held-out seeds, so
the normalised score is defined. On host (multiple 16) its width-32 student has
the rungs GRU 16, 32 and feed-forward 16, 32.
"""

import json

import pytest

from kdcc.core.errors import KdccError
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.flow.keep import gallop
from kdcc.passes import Budget
from tests.conftest import FAST, make_tiny_teacher


def _opts(keep, workers, **kw):
    kw.setdefault("budget", Budget(ratio=1.0))
    return CompileOptions(collect_episodes=4, options=dict(FAST), keep=keep, keep_episodes=5, confirm_episodes=8,
                          keep_workers=workers,
                          certify_episodes=0, **kw)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return make_tiny_teacher(tmp_path_factory.mktemp("keep") / "t.pt", seed=3, hidden=32, hypernet_embed=32)


@pytest.fixture(scope="module")
def parallel(teacher, tmp_path_factory):
    """The search in 2 forked local processes, written as a bundle (no libraries)."""
    out = tmp_path_factory.mktemp("keep") / "b"
    return out, compile_teacher(str(teacher), "host", out, _opts(0.0, 2), build=False)


def _same_search(a, b):
    assert a["chosen"] == b["chosen"] and a["distill_seeds"] == b["distill_seeds"]
    assert {(p["kind"], p["width"]): p["score"] for p in a["points"]} == \
        {(p["kind"], p["width"]): p["score"] for p in b["points"]}


def _recorder(boundary):
    seen = []

    def evaluate(jobs):
        seen.append(list(jobs))
        return [i >= boundary[kind] for kind, i in jobs]
    return seen, evaluate


def test_gallop_finds_the_boundary_from_the_cheap_end_in_few_rounds():
    seen, evaluate = _recorder({"rnn": 5})
    assert sorted(i for _, i in gallop({"rnn": list(range(16))}, 1, evaluate)) == [0, 1, 3, 4, 5, 7]
    assert [len(r) for r in seen] == [1] * 6  # one trial a round
    for k in (1, 2, 3):  # the boundary is found however many rungs a round scores, and little else
        for b in (0, 6, 11, 15):
            seen, evaluate = _recorder({"rnn": b})
            found = dict.fromkeys(gallop({"rnn": list(range(16))}, k, evaluate))
            assert ("rnn", b) in found and (b == 0 or ("rnn", b - 1) in found) and len(found) <= 9
            assert all(len(r) <= k for r in seen)
    seen, evaluate = _recorder({"rnn": 99})  # nothing keeps: the widest was tried
    assert ("rnn", 3) in gallop({"rnn": [1, 2, 3, 4]}, 2, evaluate)


def test_gallop_searches_a_second_kind_only_below_the_best_kept():
    costs = {"rnn": [4.0, 5.0, 6.0, 7.0], "ff": [1.0, 2.0, 4.5, 8.0]}
    seen, evaluate = _recorder({"rnn": 0, "ff": 2})
    found = gallop(costs, 2, evaluate)
    assert seen[0] == [("rnn", 0), ("ff", 0)]  # both kinds start at their cheapest
    # rnn 0 keeps at cost 4: ff rungs from 4.5 up are never trained
    assert set(found) == {("rnn", 0), ("ff", 0), ("ff", 1)}


def test_keep_zero_takes_the_cheapest_rung_the_same_in_parallel_and_in_sequence(teacher, parallel):
    bundle, out = parallel
    search = out.keep
    assert search["ladder"] == {"rnn": [16, 32], "ff": [16, 32]} and search["workers"] == 2
    cheapest = min(search["points"], key=lambda p: (p[search["metric"]], -p["score"]))
    assert search["chosen"]["width"] == 16 and search["chosen"]["kind"] == cheapest["kind"] == "ff"
    assert search["metric"] == "flops.robot"  # the budget names a FLOP ratio
    prune = next(r for r in out.result.records if r.name == "prune")
    assert prune.decisions["width"] == 16 and prune.decisions["kind"] == "ff"
    assert prune.decisions["keep"]["chosen"] == search["chosen"]
    assert [r.index for r in out.result.records] == list(range(len(out.result.records)))
    assert len(search["distill_seeds"]["scores"]) == 3 and search["distill_seeds"]["seeds"] == [0, 1, 2]
    report = (bundle / "report.md").read_text()
    assert "Keep the score (--keep)" in report
    for p in search["points"]:  # every evaluated point is a row of the section's table
        assert f"{p['kind']} {p['width']}" in report and p["score"] - p["se"] >= 0.0
    assert json.loads((bundle / "keep.json").read_text())["chosen"]["width"] == 16
    one = compile_teacher(str(teacher), "host", None, _opts(0.0, 1), build=False)
    seq = one.keep
    assert seq["backend"] == "this process" and search["backend"] == "process"
    _same_search(seq, search)
    # the chosen trial's student is the compile's: the same records whichever process trained it
    assert [(r.name, r.text, r.metrics) for r in one.result.records] == \
        [(r.name, r.text, r.metrics) for r in out.result.records]
    distill = next(r for r in out.result.records if r.name == "distill")
    assert distill.wall_s > 0.01 and distill.decisions["options"]["steps"] == FAST["distill.steps"]


def test_ray_tasks_choose_the_same_student_as_local_processes(teacher, parallel):
    pytest.importorskip("ray", reason="Ray is the optional extra kdcc[ray]; CI installs it")
    ray = compile_teacher(str(teacher), "host", None, _opts(0.0, 2, ray="auto"), build=False).keep
    assert ray["backend"] == "ray" and ray["workers"] == 2
    _same_search(ray, parallel[1].keep)


def test_without_a_budget_the_search_sizes_by_latency_up_to_the_teacher(teacher):
    out = compile_teacher(str(teacher), "host", None, _opts(0.0, 1, budget=Budget()), build=False)
    assert out.keep["metric"] == "latency_us.robot" and out.result.ctx.budget.ratio == 1.0


def test_keep_off_is_the_old_default_budget(teacher):
    with pytest.raises(KdccError, match="budget unreachable"):  # 30x is below this tiny teacher's smallest student
        compile_teacher(str(teacher), "host", None, _opts(None, 1, budget=Budget()), build=False)


def test_an_unkeepable_fraction_is_one_line_naming_the_best_score(teacher, capsys):
    from kdcc.cli.app import main

    opts = [a for k, v in FAST.items() for a in ("--opt", f"{k}={v}")]
    argv = ["compile", str(teacher), "--target", "host", "--budget-flops", "1x", "--keep", "10",
            "--keep-episodes", "4", "-q", *opts]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--keep 10: no student keeps score − 0·SE ≥ 10" in err and "best: " in err


def test_keep_needs_prune_then_distill_unless_it_is_the_default(teacher):
    with pytest.raises(KdccError, match="--keep searches prune widths"):
        compile_teacher(str(teacher), "host", None, _opts(0.5, 1, pipeline="exact"), build=False)
    exact = compile_teacher(str(teacher), "host", None, _opts(0.97, 1, pipeline="exact"), build=False)
    assert exact.keep is None  # the default objective: nothing to size in the exact pipeline


def test_ray_without_the_search_is_a_one_line_error(teacher, capsys):
    from kdcc.cli.app import main

    assert main(["compile", str(teacher), "--target", "host", "--keep", "off", "--ray", "auto", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--ray runs the --keep search's trials: it needs --keep (not off)" in err
    with pytest.raises(SystemExit) as bad:  # argparse's own error: usage line, then the message
        main(["compile", str(teacher), "--target", "host", "--keep", "most", "-q"])
    assert bad.value.code == 2 and "a fraction of the teacher's score (e.g. 0.97) or off, not 'most'" in capsys.readouterr().err
