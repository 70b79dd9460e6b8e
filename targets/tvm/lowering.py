"""Lowering a team step out of PyTorch: plain-op fx graph → TVM Relax, and → ONNX.

Stages, in order:

1. `decompose_recurrent`: TVM's `from_exported_program` rejects fused recurrent
   cells, so every `nn.GRUCell` (a `call_module` node, or a `torch.gru_cell`
   call) becomes the ops it stands for (PyTorch's gate order r, z, n):

       r  = σ(x W_ir + b_ir + h W_hr + b_hr)
       z  = σ(x W_iz + b_iz + h W_hz + b_hz)
       n  = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn))
       h' = n + z ⊙ (h − n)                      (= (1 − z) ⊙ n + z ⊙ h)

   The weights stay where they were (the cell's parameters, read with
   `get_attr`), so the graph keeps the same state dict.
2. `to_relax`: `torch.export` of the decomposed graph, imported into Relax.
3. `to_onnx`: the same graph through the TorchScript ONNX exporter (the dynamo
   exporter needs `onnxscript`, which kdcc does not depend on), simplified with
   onnxsim, written atomically, deterministic bytes.

TVM is imported inside the functions that need it, so `kdcc --help` stays fast.
"""

from __future__ import annotations

import copy
import io
import operator
import warnings
from pathlib import Path

import torch
from torch import fx, nn

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes
from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import team_example_inputs

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "decompose_recurrent", "to_relax", "to_onnx", "onnx_bytes"]

INPUT_NAMES = ("obs", "last_actions", "hidden", "state")
OUTPUT_NAMES = ("actions", "q", "new_hidden", "q_tot")
ONNX_OPSET = 17

_GRU_FUNCTIONS = {torch.gru_cell, torch._VF.gru_cell}


def _emit_gru(graph: fx.Graph, x, h, w_ih, w_hh, b_ih, b_hh):
    """Insert the GRU cell's ops before the current insertion point; returns h'.

    `h` None means a zero hidden state, shaped like one gate of the input projection.
    """
    f = graph.call_function
    gi = f(torch.nn.functional.linear, (x, w_ih, b_ih))
    gi3 = f(torch.chunk, (gi, 3), {"dim": -1})
    if h is None:
        h = f(torch.zeros_like, (f(operator.getitem, (gi3, 0)),))
    gh = f(torch.nn.functional.linear, (h, w_hh, b_hh))
    gh3 = f(torch.chunk, (gh, 3), {"dim": -1})
    i_r, i_z, i_n = (f(operator.getitem, (gi3, k)) for k in range(3))
    h_r, h_z, h_n = (f(operator.getitem, (gh3, k)) for k in range(3))
    r = f(torch.sigmoid, (f(torch.add, (i_r, h_r)),))
    z = f(torch.sigmoid, (f(torch.add, (i_z, h_z)),))
    n = f(torch.tanh, (f(torch.add, (i_n, f(torch.mul, (r, h_n)))),))
    return f(torch.add, (n, f(torch.mul, (z, f(torch.sub, (h, n))))))


def _gru_operands(gm: fx.GraphModule, node: fx.Node):
    """(x, h, w_ih, w_hh, b_ih, b_hh) of a GRU cell node, or None if the node is not one."""
    if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.GRUCell):
        cell = gm.get_submodule(node.target)
        x = node.kwargs.get("input", node.args[0] if node.args else None)
        h = node.kwargs.get("hx", node.args[1] if len(node.args) > 1 else None)
        graph = gm.graph
        params = [graph.get_attr(f"{node.target}.{p}") if getattr(cell, p) is not None else None
                  for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        return (x, h, *params)
    if node.op == "call_function" and node.target in _GRU_FUNCTIONS:
        args = list(node.args) + [None] * (6 - len(node.args))
        return tuple(args[:6])
    return None


def decompose_recurrent(module: nn.Module) -> fx.GraphModule:
    """A copy of `module` as an fx graph with every GRU cell spelled out in plain ops.

    Accepts an eager module (traced here) or an fx GraphModule (copied, never
    mutated). A cell called without a hidden state gets zeros, as `nn.GRUCell` does.
    """
    if isinstance(module, fx.GraphModule):
        gm = fx.GraphModule(module, copy.deepcopy(module.graph))
    else:
        try:
            gm = fx.symbolic_trace(module)
        except Exception as e:  # tracing errors come in many types; report them as one line
            raise KdccError(f"lowering: cannot trace {type(module).__name__} with torch.fx ({e})") from None
    graph = gm.graph
    for node in list(graph.nodes):
        with graph.inserting_before(node):
            operands = _gru_operands(gm, node)
            if operands is None:
                continue
            x, h, w_ih, w_hh, b_ih, b_hh = operands
            new_h = _emit_gru(graph, x, h, w_ih, w_hh, b_ih, b_hh)
        node.replace_all_uses_with(new_h)
        graph.erase_node(node)
    graph.lint()
    return fx.GraphModule(gm, graph, class_name=type(module).__name__)


def _exported(module: nn.Module, spec: MarlSpec) -> torch.export.ExportedProgram:
    gm = decompose_recurrent(module).eval()
    try:
        return torch.export.export(gm, team_example_inputs(spec), strict=False)
    except Exception as e:  # torch.export raises many error types; one line for the CLI
        raise KdccError(f"lowering: torch.export of the team step failed ({type(e).__name__}: {e})") from None


class _PackedOutputs(nn.Module):
    """The team step with its four results in one float32 vector (see `to_relax`)."""

    def __init__(self, team: nn.Module):
        super().__init__()
        self.team = team

    def forward(self, obs, last_actions, hidden, state):
        actions, q, new_hidden, q_tot = self.team(obs, last_actions, hidden, state)
        return torch.cat([actions.float(), q.reshape(-1), new_hidden.reshape(-1), q_tot.reshape(-1)])


def _import(module: nn.Module, spec: MarlSpec):
    from tvm.relax.frontend.torch import from_exported_program

    with torch.no_grad():
        program = _exported(module, spec)
    try:
        return from_exported_program(program)
    except Exception as e:  # unsupported ops surface as assorted TVM errors
        raise KdccError(f"lowering: TVM cannot import the team step ({type(e).__name__}: {e})") from None


def to_relax(module: nn.Module, spec: MarlSpec):
    """The team step as a TVM Relax IRModule with two entry points over (obs, last_actions, hidden, state):

    - `main` returns (actions, q, new_hidden, q_tot): the C API keeps `new_hidden` as the next
      step's input without a copy (on the GPU too);
    - `main_packed` returns one float32 vector [actions (n) | q (n·A) | new_hidden (n·H) | q_tot (1)]:
      from Python, converting four result tensors costs more than the step itself (~3.5 µs of ~10).
    """
    from tvm import relax

    mod = _import(module, spec)
    packed = _import(_PackedOutputs(module), spec)["main"]
    body = packed.body  # a 1-tuple of the vector: return the vector itself
    seq = relax.BlockBuilder().normalize(relax.SeqExpr(body.blocks, relax.TupleGetItem(body.body, 0)))
    mod["main_packed"] = relax.Function(packed.params, seq, attrs=packed.attrs).with_attr(
        "global_symbol", "main_packed")
    return mod


def onnx_bytes(module: nn.Module, spec: MarlSpec) -> bytes:
    """The team step as a simplified ONNX model; the same inputs give the same bytes."""
    import onnx
    import onnxsim

    gm = decompose_recurrent(module).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # per-agent input slices
        torch.onnx.export(gm, team_example_inputs(spec), buf, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES))
    model = onnx.load_from_string(buf.getvalue())
    model, ok = onnxsim.simplify(model)
    if not ok:
        raise KdccError("lowering: onnxsim could not validate the simplified student.onnx")
    model.producer_name, model.producer_version = "kdcc", ""
    model.doc_string = f"kdcc team step: {spec.n_agents} agents, inputs {', '.join(INPUT_NAMES)}"
    return model.SerializeToString(deterministic=True)


def to_onnx(module: nn.Module, spec: MarlSpec, path: str | Path) -> Path:
    """Write the team step to `path` as ONNX (atomically) and return the path."""
    path = Path(path)
    atomic_write_bytes(path, onnx_bytes(module, spec))
    return path
