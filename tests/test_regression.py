"""Pass-by-pass regression: the default pipeline reproduces tests/golden/record, and `kdcc check` names the pass.

The golden compile (tests/golden/make_golden.py) is recompiled here with the
same arguments; a change anywhere that moves any pass fails
`test_default_pipeline_matches_golden` with the pass named. The other tests
perturb one pass on purpose and check that `kdcc check` blames exactly it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdcc.cli.app import main as kdcc
from kdcc.core.fileio import npz_bytes
from tests.golden.make_golden import DATASET, RECORD, SL_RECORD, TEACHER, compile_args, sl_compile_args

GOLDEN = Path(__file__).parent / "golden"


def _compile(tmp_path_factory, name: str, *extra: str) -> Path:
    out = tmp_path_factory.mktemp(name) / "record"
    assert kdcc(compile_args(out, *extra)) == 0
    return out


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory, "fresh")


@pytest.fixture(scope="module")
def prune_perturbed(tmp_path_factory) -> Path:
    """A budget of 10× instead of the default 30×: prune keeps 16 units instead of 8."""
    return _compile(tmp_path_factory, "prune", "--budget-flops", "10x")


@pytest.fixture(scope="module")
def distill_perturbed(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory, "distill", "--opt", "distill.w_relation=0.7")


def _check(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = kdcc(["check", *map(str, args)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_golden_inputs_are_small_and_present():
    assert TEACHER.is_file() and DATASET.is_file() and (RECORD / "manifest.json").is_file()
    assert sum(f.stat().st_size for f in GOLDEN.rglob("*") if f.is_file()) < 2_000_000
    assert not (RECORD / "timings.json").exists()  # wall times are never compared nor committed


def test_default_pipeline_matches_golden(fresh, capsys):
    status, out, _ = _check(capsys, fresh, "--against", RECORD)
    assert status == 0, out
    assert "OK: no pass diverges" in out
    assert out.count("✓") == len(json.loads((RECORD / "manifest.json").read_text())["passes"])


def test_speaker_listener_pipeline_matches_golden(tmp_path, capsys):
    """A heterogeneous team: one network per agent, each its own width, pass by pass as recorded."""
    fresh_sl = tmp_path / "record"
    assert kdcc(sl_compile_args(fresh_sl)) == 0
    status, out, _ = _check(capsys, fresh_sl, "--against", SL_RECORD)
    assert status == 0, out
    prune = json.loads(next(SL_RECORD.glob("*_prune/metrics.json")).read_text())
    assert len(prune["decisions"]["widths"]) == 2


def test_perturbed_prune_budget_is_blamed_on_prune(prune_perturbed, capsys):
    status, out, _ = _check(capsys, prune_perturbed, "--against", RECORD)
    assert status == 1
    assert "first divergence: pass 04 prune" in out and "DIVERGED at 04_prune" in out
    assert "✓ 03_approximate-mixer" in out and "✗ 04_prune" in out
    assert "note: manifests differ: budget ratio: 30.0 → 10.0" in out
    assert "-program n_agents=3 obs=18 state=54 actions=5 agent=rnn/8 " in out  # the graph text diff
    assert "+program n_agents=3 obs=18 state=54 actions=5 agent=rnn/16 " in out
    assert "metric deltas after prune" in out and "metrics.flops" in out and "Δ%" in out
    assert "decisions.width: 8 → 16" in out


def test_perturbed_distill_weight_is_blamed_on_distill(distill_perturbed, capsys):
    status, out, _ = _check(capsys, distill_perturbed, "--against", RECORD, "--json")
    assert status == 1
    report = json.loads(out)
    first = report["first_divergence"]
    assert (first["index"], first["name"]) == (5, "distill")
    assert first["text_diff"] == ""  # distillation moves weights, not the graph
    assert "probe q" in first["reasons"] and not first["probe"]["q"]["within"]
    assert any(m["key"] == "fidelity.max_abs_dq" for m in first["metrics"])
    assert "decisions.options.w_relation: 0.5 → 0.7 (28.6% beyond metric-tol 0.1% + atol 1e-05)" in first["decisions"]
    assert report["notes"] == ["options distill.w_relation: (unset) → 0.7"]
    status, text, _ = _check(capsys, distill_perturbed, "--against", RECORD)
    assert status == 1 and "graph text: identical" in text and "metric deltas after distill" in text


def test_probe_tolerances(fresh, tmp_path, capsys):
    """A probe difference within rtol/atol passes; beyond it, the pass that holds it is the first divergence."""
    rec = tmp_path / "rec"
    shutil.copytree(fresh, rec)
    probe = rec / "07_fuse-team" / "probe.npz"
    with np.load(probe) as z:
        arrays = dict(z)
    arrays["q"] = arrays["q"] + np.float32(2e-6)
    probe.write_bytes(npz_bytes(arrays))
    assert _check(capsys, rec, "--against", RECORD)[0] == 0
    arrays["q"][0, 0, 0, 0] += 1e-2
    probe.write_bytes(npz_bytes(arrays))
    status, out, _ = _check(capsys, rec, "--against", RECORD, "--atol", "1e-3")
    assert status == 1 and "DIVERGED at 07_fuse-team" in out and "graph text: identical" in out
    assert _check(capsys, rec, "--against", RECORD, "--atol", "0.02")[0] == 0


def test_update_replaces_golden(prune_perturbed, tmp_path, capsys):
    golden = tmp_path / "golden"
    shutil.copytree(RECORD, golden)
    status, out, _ = _check(capsys, prune_perturbed, "--against", golden, "--update")
    assert status == 0 and "DIVERGED at 04_prune" in out and f"updated golden {golden}" in out
    assert _check(capsys, prune_perturbed, "--against", golden)[0] == 0
    assert not (golden / "timings.json").exists()
    prune_text = "04_prune/program.txt"
    assert (golden / prune_text).read_bytes() == (prune_perturbed / prune_text).read_bytes()
    new = tmp_path / "new-golden"  # --update also creates a golden that does not exist yet
    assert _check(capsys, RECORD, "--against", new, "--update", "-q")[0] == 0
    assert _check(capsys, RECORD, "--against", new)[0] == 0
    assert list(tmp_path.glob(".*")) == []  # no temporary directories left behind


def test_bundle_record_is_found(fresh, tmp_path, capsys):
    """`kdcc compile -o BUNDLE` keeps the record in BUNDLE/record/ (without timings): check accepts the bundle."""
    shutil.copytree(fresh, tmp_path / "bundle" / "record", ignore=shutil.ignore_patterns("timings.json"))
    assert _check(capsys, tmp_path / "bundle", "--against", RECORD, "-q") == (0, f"OK: 10 passes match {RECORD}\n", "")


def test_bad_input_exits_2(fresh, tmp_path, capsys):
    status, _, err = _check(capsys, tmp_path / "missing", "--against", RECORD)
    assert status == 2 and err.count("\n") == 1 and "no such directory" in err
    (tmp_path / "empty").mkdir()
    status, _, err = _check(capsys, tmp_path / "empty", "--against", RECORD)
    assert status == 2 and "not a record (no manifest.json" in err
    status, _, err = _check(capsys, fresh, "--against", GOLDEN / "exact-upto-fuse-team")
    assert status == 2 and "different pipelines" in err and "--update" in err
    broken = tmp_path / "broken"
    shutil.copytree(fresh, broken)
    (broken / "05_distill" / "probe.npz").unlink()
    status, _, err = _check(capsys, broken, "--against", RECORD)
    assert status == 2 and "missing 05_distill/probe.npz" in err
    assert _check(capsys, fresh, "--against", RECORD, "--rtol", "-1")[0] == 2
    status, _, err = _check(capsys, fresh, "--against", GOLDEN, "--update")
    assert status == 2 and "not a record; not replacing it" in err


def test_check_module_is_light():
    """`kdcc --help` builds the check parser: it must not pull in torch or numpy."""
    code = "import sys, kdcc.cli.check; sys.exit(bool({'torch', 'numpy'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_fixture_exact_pipeline_upto_fuse_team(check_pipeline_against_golden):
    """How a pass author writes a regression test: pipeline up to their pass, against a golden snapshot."""
    check_pipeline_against_golden(TEACHER, upto="fuse-team", golden="tests/golden/exact-upto-fuse-team",
                                  pipeline="exact")
