"""Truthful errors: bad input is one line and exit 2, a bug is one line and exit 1 (its traceback with -v).

A failure only becomes bad input where the user's choice caused it (a tvm_target TVM rejects, a module
torch.fx cannot trace, an op TVM's importer lacks), chained to the original exception; anything else in
the TVM backend propagates. A kdcc schedule that fails on a kernel is never silent: the library's record
(profile.json) and `kdcc inspect` name the kernel that TVM's default schedule runs instead.

The compiles run in-process on a tiny teacher, a four-episode dataset and a few training steps, with
TVM's importer replaced so that they stop at the first lowering.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
from torch import nn

from kdcc.cli.app import main
from kdcc.core.errors import KdccError
from tests.conftest import make_tiny_teacher

SMALL = ["--opt", "distill.steps=20", "--opt", "distill.dagger_every=0", "--opt", "approximate-mixer.steps=20",
         "--budget-flops", "2x", "--keep", "off", "--certify-episodes", "0"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from kdcc.api import collect

    d = tmp_path_factory.mktemp("inputs")
    teacher = make_tiny_teacher(d / "teacher.pt")
    collect(teacher, d / "data.npz", episodes=4)
    return teacher, d / "data.npz"


def _compile(inputs, out, *extra: str) -> int:
    teacher, data = inputs
    return main(["compile", str(teacher), "--target", "host", "-o", str(out), "--dataset", str(data), "-q",
                 *SMALL, *extra])


def _tvm_import_raises(monkeypatch, error: Exception) -> None:
    import tvm.relax.frontend.torch

    def fail(*_, **__):
        raise error

    monkeypatch.setattr(tvm.relax.frontend.torch, "from_exported_program", fail)


def test_a_bug_in_the_backend_is_one_internal_error_line_exit_1(inputs, tmp_path, monkeypatch, capsys):
    _tvm_import_raises(monkeypatch, ValueError("index 7 is out of range\nsecond line"))
    assert _compile(inputs, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "kdcc compile: internal error: ValueError: index 7 is out of range (a bug in kdcc or a library it uses; "
        "run again with -v for the traceback and please report it)"], err
    assert not (tmp_path / "out").exists()


def test_a_bug_with_verbose_raises_with_its_traceback(inputs, tmp_path, monkeypatch):
    _tvm_import_raises(monkeypatch, ValueError("index 7 is out of range"))
    with pytest.raises(ValueError, match="index 7 is out of range"):
        _compile(inputs, tmp_path / "out", "-v")


def test_an_op_tvm_cannot_import_stays_bad_input_exit_2(inputs, tmp_path, monkeypatch, capsys):
    unsupported = AssertionError("Unsupported function types ['fancy_op.default']")
    _tvm_import_raises(monkeypatch, unsupported)
    assert _compile(inputs, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("kdcc compile: error: lowering: TVM cannot import the team step"), err
    assert err.rstrip().endswith("(AssertionError: Unsupported function types ['fancy_op.default'])"), err
    with pytest.raises(KdccError) as raised:  # -v: the one line, chained to what TVM said
        _compile(inputs, tmp_path / "out", "-v")
    assert raised.value.__cause__ is unsupported


def test_an_untraceable_module_is_bad_input_chained_and_a_broken_one_is_a_bug():
    from torch.fx.proxy import TraceError

    from kdcc.targets.tvm.lowering import decompose_recurrent

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class Broken(nn.Module):
        def forward(self, x):
            return x * [1.0, 2.0][2]

    with pytest.raises(KdccError, match="cannot trace Branchy") as raised:
        decompose_recurrent(Branchy())
    assert isinstance(raised.value.__cause__, TraceError)
    with pytest.raises(IndexError):
        decompose_recurrent(Broken())


def test_a_tvm_target_tvm_rejects_is_bad_input_chained():
    from kdcc.targets.profile import load_profile
    from kdcc.targets.tvm.build import tvm_target

    profile = load_profile("host")
    device = replace(profile.device("cpu"), tvm_target={"kind": "llvm", "no-such-option": 1})
    with pytest.raises(KdccError, match="TVM rejects tvm_target") as raised:
        tvm_target(device, profile)
    assert isinstance(raised.value.__cause__, ValueError)


def test_a_failed_schedule_is_recorded_per_kernel(tmp_path, monkeypatch):
    from kdcc.targets.profile import load_profile
    from kdcc.targets.tvm import build
    from kdcc.targets.tvm.lowering import to_relax
    from kdcc.targets.tvm.schedules import matmul
    from tests.targets._team import tiny_team

    team = tiny_team()
    relax_mod = to_relax(team, team.spec)
    profile = load_profile("host")

    def built(name: str):
        return build.build_library(relax_mod, profile.device("cpu"), profile, tmp_path / name / "policy.so",
                                   tmp_path / name / ".work")

    scheduled = built("scheduled")
    assert scheduled.fallbacks == {} and "schedule" not in scheduled.record(tmp_path)

    def fail(*_, **__):
        raise ValueError("this tile does not fit")

    monkeypatch.setattr(matmul, "_schedule_matmul", fail)
    lib = built("fell-back")
    assert lib.fallbacks and all("matmul" in kernel for kernel in lib.fallbacks), lib.fallbacks
    assert set(lib.fallbacks.values()) == {"matmul schedule failed: ValueError: this tile does not fit"}
    entry = lib.record(tmp_path)["schedule"]["fallbacks"]
    assert [f["kernel"] for f in entry] == sorted(lib.fallbacks), entry


def test_inspect_names_the_kernels_that_fell_back(host_bundle, tmp_path, capsys):
    bundle = shutil.copytree(host_bundle("spread"), tmp_path / "bundle")
    assert main(["inspect", str(bundle)]) == 0
    assert "schedule fallbacks" not in capsys.readouterr().out
    profile = json.loads((bundle / "profile.json").read_text())
    profile["libraries"][0]["schedule"] = {"fallbacks": [{"kernel": "fused_matmul_add",
                                                          "reason": "matmul schedule failed: ValueError: x"}]}
    (bundle / "profile.json").write_text(json.dumps(profile))
    assert main(["inspect", str(bundle)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("schedule fallbacks")]
    assert len(lines) == 1 and lines[0].endswith(
        "lib/cpu/policy.so: fused_matmul_add (matmul schedule failed: ValueError: x)"), lines


def test_a_bundle_run_from_its_host_library_gets_no_note(host_bundle, capsys):
    from kdcc.api import load_policy

    load_policy(host_bundle("spread"))
    assert "evaluating" not in capsys.readouterr().err
