"""ONNX teachers: the same numbers as the torch teacher, eval/collect through ONNX Runtime, a compile
that trains a fresh student, and one-line errors for graphs that do not fit the spec."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from kdcc.api import collect, evaluate, load_teacher_like
from kdcc.core.errors import KdccError
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions, run_passes
from kdcc.inputs.onnx_teacher import OnnxModule, export_onnx_teacher
from kdcc.inputs.teacher import load_teacher
from kdcc.passes import Budget
from tests.conftest import make_tiny_teacher


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    pt = make_tiny_teacher(root / "tiny.pt")
    teacher = load_teacher(pt)
    return pt, export_onnx_teacher(teacher, root / "onnx"), teacher


def _batch(spec, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, spec.input_dim, generator=g), torch.randn(b, spec.agent.hidden_dim, generator=g),
            torch.randn(b, spec.n_agents, generator=g), torch.randn(b, spec.state_dim, generator=g))


@pytest.mark.parametrize("fixed", [False, True])
def test_onnx_modules_match_the_torch_teacher(pair, tmp_path, fixed):
    pt, onnx_dir, teacher = pair
    if fixed:  # exported for one team step only: larger batches run in chunks
        onnx_dir = export_onnx_teacher(teacher, tmp_path / "fixed", fixed_batch=True)
    loaded = load_teacher_like(onnx_dir)
    assert isinstance(loaded.agent, OnnxModule) and loaded.spec == teacher.spec
    assert (loaded.mixer.fixed_batch == 1) is fixed
    x, h, qs, s = _batch(teacher.spec, 7)
    with torch.no_grad():
        for got, want in zip(loaded.agent(x, h), teacher.agent(x, h)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(loaded.mixer(qs, s), teacher.mixer(qs, s), atol=1e-5, rtol=1e-5)


def test_eval_and_collect_run_onnx_runtime(pair, tmp_path):
    pt, onnx_dir, _ = pair
    assert evaluate(onnx_dir, episodes=2, seed=3).mean == pytest.approx(evaluate(pt, episodes=2, seed=3).mean)
    from_onnx = collect(onnx_dir, tmp_path / "a.npz", episodes=2, seed=1)
    from_torch = collect(pt, tmp_path / "b.npz", episodes=2, seed=1)
    assert np.array_equal(from_onnx.arrays["actions"], from_torch.arrays["actions"])
    np.testing.assert_allclose(from_onnx.arrays["q"], from_torch.arrays["q"], atol=1e-5)
    np.testing.assert_allclose(from_onnx.arrays["q_tot"], from_torch.arrays["q_tot"], atol=1e-5)


def test_compile_starts_from_a_fresh_student_and_distills(pair, tmp_path):
    _, onnx_dir, teacher = pair
    opts = CompileOptions(passes=["normalize-eval", "prune", "distill"], budget=Budget(ratio=3.0), keep=None, seed=3,
                          collect_episodes=4, options={"distill.steps": 30, "distill.dagger_every": 0})
    out = compile_teacher(str(onnx_dir), "orin", tmp_path / "out", opts, build=False)
    records = out.result.records
    assert records[0].fidelity["max_abs_dq"] > 0.01  # the import is a fresh student (seed 3), not the teacher
    assert out.result.program.spec.agent.hidden_dim < teacher.spec.agent.hidden_dim
    assert records[-1].decisions["curve"] and (tmp_path / "out" / "report.html").is_file()
    assert out.result.certified is None  # no torch weights to bound: no certify stage, said in a note
    manifest = json.loads((tmp_path / "out" / "record" / "manifest.json").read_text())
    assert manifest["inputs"]["teacher"]["files"] == ["agent.onnx", "mixer.onnx", "spec.json"]


def test_a_pipeline_without_distill_is_refused(pair):
    with pytest.raises(KdccError, match="must include distill"):
        run_passes(str(pair[1]), "orin", CompileOptions(pipeline="exact"))


def test_profile_of_an_onnx_teacher_is_its_architecture(pair):
    from kdcc.api import profile

    _, by_onnx = profile(pair[1], "orin")
    _, by_torch = profile(pair[0], "orin")
    assert by_onnx.total.flops == by_torch.total.flops


def _broken_copy(pair, tmp_path, edit):
    d = tmp_path / "broken"
    shutil.copytree(pair[1], d)
    edit(d)
    return d


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "mixer.onnx").unlink(), "mixer.onnx is missing"),
    (lambda d: (d / "spec.json").unlink(), "spec file not found"),
    (lambda d: (d / "agent.onnx").write_bytes(b"not onnx"), "agent.onnx: not a loadable ONNX model"),
    (lambda d: (d / "spec.json").write_text(json.dumps({**json.loads((d / "spec.json").read_text()),
                                                         "spec": {**json.loads((d / "spec.json").read_text())["spec"],
                                                                  "obs_dim": 20}})),
     "has width 26, the spec implies 28"),
])
def test_bad_onnx_teachers_are_one_line_errors(pair, tmp_path, edit, message):
    with pytest.raises(KdccError, match=message):
        load_teacher_like(_broken_copy(pair, tmp_path, edit))
