"""What `kdcc compile` returns is what `kdcc eval` evaluates: the compiled library, or its ONNX graph."""

import json
import shutil

import pytest

from kdcc.api import evaluate
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.targets.bundle.integrity import MANIFEST, manifest_bytes


@pytest.fixture(scope="module")
def compiled(host_compile):
    """The session's spread compile (tests/conftest.py): a 32-wide teacher and what compile_teacher returned."""
    return host_compile("spread")


def test_eval_of_the_bundle_equals_the_compiled_student(compiled):
    teacher, out = compiled
    program = out.result.program
    env = make_env(program.spec.env)
    expected = run_episodes(env, TorchPolicy(program.spec, program.team_module()), 3, 0).returns
    got = evaluate(out.out_dir, episodes=3, seed=0)
    assert got.mean == pytest.approx(float(expected.mean()), abs=1e-9)
    assert program.spec.agent.hidden_dim < 32  # a pruned student, not the teacher


def test_a_bundle_without_a_library_for_this_machine_runs_its_onnx_graph(compiled, tmp_path, capsys):
    _, out = compiled
    cross = tmp_path / "cross"
    shutil.copytree(out.out_dir, cross)
    doc = json.loads((cross / "profile.json").read_text())
    for lib in doc["libraries"]:
        lib["arch"] = "aarch64"
    (cross / "profile.json").write_text(json.dumps(doc))
    files = {f.relative_to(cross).as_posix(): f.read_bytes() for f in cross.rglob("*") if f.is_file()}
    (cross / MANIFEST).write_bytes(manifest_bytes(files))  # as the compile would have written it
    via_onnx = evaluate(cross, episodes=3, seed=0)
    assert "student.onnx in ONNX Runtime" in capsys.readouterr().err
    assert via_onnx.mean == pytest.approx(evaluate(out.out_dir, episodes=3, seed=0).mean, abs=1e-9)


def test_the_teacher_has_one_digest_everywhere_and_it_is_sha256sum(compiled):
    import hashlib

    teacher, out = compiled
    expected = hashlib.sha256(teacher.read_bytes()).hexdigest()
    doc = json.loads((out.out_dir / "profile.json").read_text())
    manifest = json.loads((out.out_dir / "record" / "manifest.json").read_text())
    assert doc["inputs"]["teacher"]["sha256"] == expected
    assert manifest["inputs"]["teacher"]["sha256"] == expected
    assert [v for k, v in doc["hashes"]["inputs"].items() if k.endswith(teacher.name)] == [expected]
