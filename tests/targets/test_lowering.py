"""Lowering: GRU cells spelled out exactly, the team step through torch.export/Relax and ONNX."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import fx, nn

from kdcc.ir.team import team_example_inputs
from kdcc.targets.tvm.lowering import INPUT_NAMES, OUTPUT_NAMES, decompose_recurrent, onnx_bytes, to_onnx, to_relax
from tests.targets._team import tiny_team


class TwoCells(nn.Module):
    """One cell called with a hidden state, one without (PyTorch then uses zeros)."""

    def __init__(self):
        super().__init__()
        self.a = nn.GRUCell(5, 7)
        self.b = nn.GRUCell(7, 7, bias=False)

    def forward(self, x, h):
        return self.b(self.a(x, h))


def _gru_calls(gm: fx.GraphModule) -> int:
    return sum(n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.GRUCell) for n in gm.graph.nodes)


def test_gru_decomposition_matches_grucell():
    torch.manual_seed(0)
    m = TwoCells()
    x, h = torch.randn(4, 5), torch.randn(4, 7)
    gm = decompose_recurrent(m)
    assert _gru_calls(gm) == 0 and _gru_calls(fx.symbolic_trace(m)) == 2
    assert {n.target for n in gm.graph.nodes if n.op == "call_function"} >= {torch.sigmoid, torch.tanh}
    with torch.no_grad():
        assert torch.max(torch.abs(gm(x, h) - m(x, h))).item() <= 1e-6


def test_decomposition_of_a_graph_module_leaves_input_alone():
    team = tiny_team()
    traced = fx.symbolic_trace(team)
    before = traced.code
    gm = decompose_recurrent(traced)
    assert traced.code == before and _gru_calls(traced) == 1 and _gru_calls(gm) == 0
    x = team_example_inputs(team.spec, 3)
    with torch.no_grad():
        for got, want in zip(gm(*x), team(*x)):
            assert torch.max(torch.abs(got.double() - want.double())).item() <= 1e-6


def test_feed_forward_agent_has_nothing_to_decompose():
    team = tiny_team(kind="ff")
    assert fx.symbolic_trace(team).code == decompose_recurrent(team).code


def test_to_relax_main_signature():
    team = tiny_team()
    text = to_relax(team, team.spec).script()
    for arg in ('obs: R.Tensor((3, 18), dtype="float32")', 'last_actions: R.Tensor((3,), dtype="int64")',
                'hidden: R.Tensor((3, 16), dtype="float32")', 'state: R.Tensor((54,), dtype="float32")'):
        assert arg in text
    assert "gru" not in text.lower()


def test_onnx_runs_in_onnxruntime_and_matches_torch(tmp_path):
    team = tiny_team()
    path = to_onnx(team, team.spec, tmp_path / "student.onnx")
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    assert not any(n.op_type == "GRU" for n in model.graph.node)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in range(3):
        x = team_example_inputs(team.spec, seed)
        got = session.run(None, dict(zip(INPUT_NAMES, (t.numpy() for t in x))))
        with torch.no_grad():
            want = [t.numpy() for t in team(*x)]
        np.testing.assert_array_equal(got[0], want[0])
        for g, w in zip(got[1:], want[1:]):
            assert np.max(np.abs(g - w)) <= 1e-5


def test_onnx_bytes_are_deterministic():
    team = tiny_team()
    assert onnx_bytes(team, team.spec) == onnx_bytes(tiny_team(), team.spec)


def test_untraceable_module_is_one_line_error():
    from kdcc.core.errors import KdccError

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(KdccError, match="cannot trace Branchy"):
        decompose_recurrent(Branchy())
