"""verify: torch, ONNX Runtime and the TVM host library agree, and a mismatch names its output."""

from __future__ import annotations

import pytest

from kdcc.core.errors import KdccError
from kdcc.targets.tvm.lowering import onnx_bytes
from kdcc.targets.tvm.verify import verify_team_step
from tests.targets._team import tiny_team


@pytest.fixture(scope="module")
def built(team_bundle):
    """tiny_team(), its ONNX graph, and its host library (the session's bundle: tests/targets/conftest.py)."""
    b = team_bundle("host")
    return b.team, onnx_bytes(b.team, b.team.spec), b.out / "lib" / "cpu" / "policy.so"


def test_agreement_is_recorded(built):
    team, model, lib = built
    result = verify_team_step(team, team.spec, model, lib, steps=3)
    assert result["steps"] == 3
    for executor in ("onnxruntime", "tvm_host"):
        assert set(result["max_abs_diff"][executor]) == {"q", "new_hidden", "q_tot"}
        assert max(result["max_abs_diff"][executor].values()) <= 1e-5


def test_mismatch_names_executor_and_output(built):
    _, model, lib = built
    other = tiny_team(seed=1)  # different weights: the shipped artefacts no longer match it
    with pytest.raises(KdccError, match=r"verify: onnxruntime output '(actions|q)' differs from torch at step 0"):
        verify_team_step(other, other.spec, model, lib)
    with pytest.raises(KdccError, match=r"verify: tvm_host output '(actions|q)' differs"):
        verify_team_step(other, other.spec, onnx_bytes(other, other.spec), lib)
