"""The deploy bundle: layout, collaboration profile, atomic writes, byte-identical rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdcc.core.errors import KdccError
from kdcc.targets.bundle import writer as bundle_mod
from kdcc.targets.bundle.integrity import MANIFEST, manifest_bytes
from kdcc.targets.bundle.stages import STAGES, Stage
from kdcc.targets.bundle.writer import write_bundle
from kdcc.targets.profile import load_profile
from tests.targets._runtime import needs_aarch64_runtime
from tests.targets._team import tiny_team
from tests.targets.conftest import TEAM_BUNDLE_EXTRA, TEAM_BUNDLE_META


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def host_bundle(team_bundle):
    """The session's tiny team bundle for the host (tests/targets/conftest.py): (team, out, result, teacher)."""
    b = team_bundle("host")
    return b.team, b.out, b.result, b.teacher


def test_layout(host_bundle):
    _, out, result, _ = host_bundle
    files = _tree(out)
    for name in ("lib/cpu/policy.so", "lib/cpu/device.txt", "include/kdcc_policy.h", "src/kdcc_policy.cc",
                 "CMakeLists.txt", "kdcc_policy.cmake", "kdcc_policyConfig.cmake", "student.onnx",
                 "profile.json", "policy.d", "report.md", "runtime/x86_64/libtvm_runtime.so",
                 "runtime/x86_64/libtvm_ffi.so", "runtime/include/tvm/ffi/function.h"):
        assert name in files, name
    header = files["include/kdcc_policy.h"].decode()
    assert "#define KDCC_POLICY_N_AGENTS 3" in header and "#define KDCC_POLICY_HIDDEN_DIM 16" in header
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".bundle")]
    assert result.build_seconds["cpu"] > 0 and result.sizes["lib"] > 0


def test_collaboration_profile_and_depfile(host_bundle):
    _, out, _, teacher = host_bundle
    doc = json.loads((out / "profile.json").read_text())
    assert doc["team"]["communication_at_execution"] == "none"
    assert doc["team"]["n_agents"] == 3 and doc["hidden_state"]["size_per_agent"] == 16
    assert doc["input_construction"]["input_dim"] == 18 + 5 + 3
    assert doc["libraries"][0]["path"] == "lib/cpu/policy.so"
    assert doc["fidelity"] == {"agreement": 1.0}
    assert doc["hashes"]["inputs"][str(teacher)] and len(doc["hashes"]["student.onnx"]) == 64
    assert doc["verification"]["max_abs_diff"]["tvm_host"]["q"] <= 1e-5
    assert (out / "policy.d").read_text() == f"{out / 'profile.json'}: {teacher}\n"


def test_the_stages_read_as_the_story_of_a_build():
    assert [s.name for s in STAGES] == ["lower", "onnx", "build", "verification-host-build", "verify",
                                        "roles", "monitor", "runtime-libs", "sources", "collaboration-profile", "depfile",
                                        "extra-files", "manifest", "sign"]
    assert all(s.run.__doc__ for s in STAGES)


def test_refuses_non_empty_dir_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    team = tiny_team()
    with pytest.raises(KdccError, match="not empty"):
        write_bundle(team, team.spec, load_profile("host"), tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_failure_leaves_nothing_and_keeps_the_old_bundle(tmp_path, monkeypatch):
    team = tiny_team()
    old = tmp_path / "old"
    old.mkdir()
    (old / "profile.json").write_text("previous")

    def broken(build):
        raise KdccError("simulated failure while writing sources")

    monkeypatch.setattr(bundle_mod, "STAGES", tuple(Stage(s.name, broken) if s.name == "sources" else s for s in STAGES))
    for out in (tmp_path / "new", old):
        with pytest.raises(KdccError, match="simulated"):
            write_bundle(team, team.spec, load_profile("host"), out, force=True, direct=False)
    assert not (tmp_path / "new").exists()
    assert (old / "profile.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_meta_cannot_overwrite_kdcc_fields(tmp_path):
    team = tiny_team()
    with pytest.raises(KdccError, match="meta keys"):
        write_bundle(team, team.spec, load_profile("host"), tmp_path / "b", meta={"team": 1}, direct=False)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
@needs_aarch64_runtime
def test_same_inputs_give_byte_identical_bundles(team_bundle, tmp_path):
    """The orin bundle (cpu + gpu when nvcc exists) built again from the same inputs, over an older bundle in
    another directory (--force): the same bytes, but for the path the depfile names."""
    import shutil

    profile = "orin" if shutil.which("nvcc") else "orin-cpu"
    first = team_bundle(profile)
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "stale.txt").write_text("an older bundle's file")
    write_bundle(tiny_team(), first.team.spec, load_profile(profile), out, force=True, meta=TEAM_BUNDLE_META,
                 extra_files=TEAM_BUNDLE_EXTRA, inputs=[first.teacher])
    a, b = _tree(first.out), _tree(out)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == [MANIFEST, "policy.d"]
    assert a["policy.d"].replace(bytes(first.out), bytes(out)) == b["policy.d"]
    assert manifest_bytes({**a, "policy.d": b["policy.d"]}) == b[MANIFEST]  # the depfile is all that differs
    assert "lib/cpu/policy.so" in a and "lib/cpu/policy.direct.so" in a and "student.onnx" in a


def test_open_bundle_steps_like_the_library(host_bundle, tmp_path):
    import numpy as np

    from kdcc.ir.team import team_example_inputs
    from kdcc.targets.bundle.policy import open_bundle

    team, out, _, _ = host_bundle
    policy = open_bundle(out)
    obs, _, _, state = (t.numpy() for t in team_example_inputs(team.spec, 0))
    actions, q_tot = policy.step(obs, np.full(3, -1, dtype=np.int64), state)
    assert actions.shape == (3,) and isinstance(q_tot, float)
    (tmp_path / "profile.json").write_text("{}")
    with pytest.raises(KdccError, match="not a kdcc bundle"):
        open_bundle(tmp_path)
