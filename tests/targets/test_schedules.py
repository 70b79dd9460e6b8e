"""kdcc's CPU schedule (targets/tvm/schedules/): it transforms the matmuls, and changes no result.

Small Linear and GRU-step graphs (widths 4, 44, 256; 3 agents and batch 1) built with
`cpu_pipeline` for this machine's CPU agree with torch within 1e-5; the matmul functions
come out tiled and vectorized with their weight padding folded away; the Orin CPU target
(aarch64, NEON) compiles.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

tvm = pytest.importorskip("tvm")
from tvm import relax, tirx  # noqa: E402
from tvm.relax.frontend.torch import from_exported_program  # noqa: E402

from kdcc.targets.tvm.schedules import SCHEDULED_ATTR, cpu_pipeline, vector_lanes  # noqa: E402

ATOL = 1e-5
ORIN_CPU = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78"}


def _host():
    from tvm.target.codegen import llvm_get_system_cpu

    return tvm.target.Target({"kind": "llvm", "mcpu": str(llvm_get_system_cpu())})


class Linear(nn.Module):
    def __init__(self, i: int, o: int, act: bool = True):
        super().__init__()
        self.fc, self.act = nn.Linear(i, o), act

    def forward(self, x):
        y = self.fc(x)
        return torch.relu(y) if self.act else y


class GruStep(nn.Module):
    """A team step of a GRU agent in plain ops: Linear(26→W)+relu, GRUCell(W→W), Linear(W→5)."""

    def __init__(self, w: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(26, w), nn.Linear(w, 5)
        self.ih, self.hh = nn.Linear(w, 3 * w), nn.Linear(w, 3 * w)

    def forward(self, x, h):
        x = torch.relu(self.fc1(x))
        i_r, i_z, i_n = self.ih(x).chunk(3, dim=-1)
        h_r, h_z, h_n = self.hh(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h_new = n + z * (h - n)
        return self.fc2(h_new), h_new


class TwoInputs(nn.Module):
    """A matmul whose right operand is an input (no constant to pad), with a tanh epilogue."""

    def forward(self, x, y):
        return torch.tanh(x @ y)


def _relax(model: nn.Module, inputs):
    with torch.no_grad():
        return from_exported_program(torch.export.export(model.eval(), tuple(inputs)))


def _check_against_torch(model: nn.Module, inputs, target=None) -> None:
    target = target or _host()
    exe = relax.build(_relax(model, inputs), target, relax_pipeline=cpu_pipeline(target), exec_mode="compiled")
    got = relax.VirtualMachine(exe, tvm.cpu())["main"](*(tvm.runtime.tensor(x.numpy()) for x in inputs))
    with torch.no_grad():
        want = model(*inputs)
    want = (want,) if isinstance(want, torch.Tensor) else want
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.from_dlpack(g), w.numpy(), rtol=0, atol=ATOL)


def _prim_funcs(model: nn.Module, inputs, target) -> dict:
    """The PrimFuncs `cpu_pipeline` leaves for TIR lowering, by name, and the Relax main."""
    mod = cpu_pipeline(target)(_relax(model, inputs))
    funcs = {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
    return funcs, mod["main"]


def _schedule(func) -> str | None:
    return (func.attrs or {}).get(SCHEDULED_ATTR)


def test_vector_lanes_follow_the_target():
    assert vector_lanes({"kind": "llvm", "mcpu": "skylake-avx512"}) == 16
    assert vector_lanes({"kind": "llvm", "mcpu": "haswell"}) == 8
    assert vector_lanes({"kind": "llvm"}) == 4  # generic x86-64: SSE2
    assert vector_lanes(ORIN_CPU) == 4  # NEON


@pytest.mark.parametrize("width,rows,out",
                         [(4, 3, 4), (44, 3, 132), (256, 3, 768), (54, 1, 256), (256, 1, 5), (12, 10, 20)])
def test_linear_matches_torch(width, rows, out):
    torch.manual_seed(width + rows)
    _check_against_torch(Linear(width, out), [torch.randn(rows, width)])


@pytest.mark.parametrize("width", [4, 44])
def test_gru_step_matches_torch(width):
    torch.manual_seed(width)
    _check_against_torch(GruStep(width), [torch.randn(3, 26), torch.randn(3, width) * 0.5])


def test_matmuls_are_tiled_vectorized_and_padding_folded():
    target = _host()
    lanes = vector_lanes(target)
    funcs, main = _prim_funcs(GruStep(44), [torch.randn(3, 26), torch.randn(3, 44)], target)
    matmuls = {n: f for n, f in funcs.items() if "matmul" in n}
    assert len(matmuls) == 3  # fc1, the two gate GEMMs (same shapes: one function), fc2
    for name, func in matmuls.items():
        assert _schedule(func) == "matmul", name
        text = func.script()
        assert f"T.vectorized(T.int64({lanes}))" in text, name
        assert "T.unroll" in text and "_init" in text, name  # rows unrolled, reduction decomposed
    gates = [f for n, f in funcs.items() if "sigmoid" in n]
    assert gates and all(_schedule(f) == "elementwise" for f in gates)
    # the weight padding / packing was folded into constants: nothing left to run per call
    assert not any(n.endswith("weight_prepack") for n in funcs)
    assert "weight_prepack" not in main.script()
    # 44 → 132 outputs: the GRU weight was padded to a multiple of the lanes
    gate_gemm = next(f for n, f in matmuls.items() if any(int(p.shape[-1]) == 132 for p in f.params))
    padded = -(-132 // lanes) * lanes
    assert any(padded in [int(s) for s in p.shape] or padded * 44 == int(np.prod([int(s) for s in p.shape]))
               for p in gate_gemm.params)


def test_unrecognised_functions_keep_the_default():
    class Argmax(nn.Module):
        def forward(self, x):
            return torch.argmax(x, dim=-1)

    funcs, _ = _prim_funcs(Argmax(), [torch.randn(3, 5)], _host())
    assert funcs and all(_schedule(f) is None for f in funcs.values())


def test_fast_math_off_keeps_tvm_sigmoid():
    target = _host()
    mod = cpu_pipeline(target, fast_math=False)(_relax(GruStep(4), [torch.randn(3, 26), torch.randn(3, 4)]))
    texts = [f.script() for f in mod.functions.values() if isinstance(f, tirx.PrimFunc)]
    assert any("T.sigmoid" in t for t in texts)


def test_orin_cpu_build_compiles_and_is_scheduled():
    target = tvm.target.Target(ORIN_CPU)
    inputs = [torch.randn(3, 26), torch.randn(3, 44)]
    funcs, _ = _prim_funcs(GruStep(44), inputs, target)
    matmuls = [f for n, f in funcs.items() if "matmul" in n]
    assert matmuls and all(_schedule(f) == "matmul" and "T.vectorized(T.int64(4))" in f.script() for f in matmuls)
    exe = relax.build(_relax(GruStep(44), inputs), target, relax_pipeline=cpu_pipeline(target),
                      exec_mode="compiled")
    assert exe is not None


@pytest.mark.parametrize("n", [8, 20])
def test_non_constant_weight_is_scheduled(n):
    """A runtime right operand cannot be padded: 8 columns get 8-lane vectors, 20 a ragged tile."""
    torch.manual_seed(n)
    inputs = [torch.randn(3, 12), torch.randn(12, n)]
    funcs, _ = _prim_funcs(TwoInputs(), inputs, _host())
    assert any(_schedule(f) == "matmul" for f in funcs.values())
    _check_against_torch(TwoInputs(), inputs)
