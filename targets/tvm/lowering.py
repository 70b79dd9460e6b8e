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

What becomes a one-line KdccError is what the module itself asks for and the tools refuse: control flow
on traced values (torch.fx), a graph torch.export will not capture, an op TVM's importer does not
support; each chains the original exception (`kdcc -v` shows it). Anything else is a bug in kdcc or a
library, and propagates as it is.
"""

from __future__ import annotations

import copy
import io
import operator
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes
from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import team_example_inputs

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "Signature", "team_signature", "decompose_recurrent", "to_relax",
           "to_onnx", "onnx_bytes"]

INPUT_NAMES = ("obs", "last_actions", "hidden", "state")
OUTPUT_NAMES = ("actions", "q", "new_hidden", "q_tot")
ONNX_OPSET = 17
INTEGER_OUTPUTS = ("actions", "action")  # greedy actions (int64); every other output is float32


@dataclass(frozen=True)
class Signature:
    """What a step graph takes and returns: the team step, one role's agent step, the team monitor."""

    what: str  # for messages and the ONNX doc string
    example_inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def team_signature(spec: MarlSpec) -> Signature:
    return Signature(f"team step: {spec.n_agents} agents", team_example_inputs(spec), INPUT_NAMES, OUTPUT_NAMES)


def _signature(spec_or_signature: MarlSpec | Signature) -> Signature:
    return spec_or_signature if isinstance(spec_or_signature, Signature) else team_signature(spec_or_signature)

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
        except fx.proxy.TraceError as e:  # the forward branches on (or iterates) a traced tensor
            raise KdccError(f"lowering: cannot trace {type(module).__name__} with torch.fx ({_first_line(e)})") from e
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


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def _exported(module: nn.Module, sig: Signature) -> torch.export.ExportedProgram:
    from torch._dynamo.exc import Unsupported, UserError
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    gm = decompose_recurrent(module).eval()
    try:
        return torch.export.export(gm, sig.example_inputs, strict=False)
    except (UserError, Unsupported, GuardOnDataDependentSymNode) as e:  # what export refuses to capture
        raise KdccError(f"lowering: torch.export of the {sig.what} failed ({type(e).__name__}: "
                        f"{_first_line(e)})") from e


class _PackedOutputs(nn.Module):
    """A step with its results in one float32 vector, in output order (see `to_relax`).

    torch.fx traces a fixed argument list, so there is one subclass per step signature, its
    arguments named as the step's inputs (they name the Relax function's parameters)."""

    def __init__(self, step: nn.Module, integer: tuple[bool, ...]):
        super().__init__()
        self.step, self.integer = step, integer

    def _pack(self, outs):
        outs = outs if isinstance(outs, tuple) else (outs,)
        # integer outputs (greedy actions, one per agent) are 1-D already; float outputs are flattened
        return torch.cat([o.float() if i else o.reshape(-1) for o, i in zip(outs, self.integer)])


class _PackedTeam(_PackedOutputs):
    def forward(self, obs, last_actions, hidden, state):
        return self._pack(self.step(obs, last_actions, hidden, state))


class _PackedAgent(_PackedOutputs):
    def forward(self, obs, last_action, hidden):
        return self._pack(self.step(obs, last_action, hidden))


class _PackedSharedAgent(_PackedOutputs):
    def forward(self, obs, last_action, hidden, agent_id):
        return self._pack(self.step(obs, last_action, hidden, agent_id))


class _PackedMonitor(_PackedOutputs):
    def forward(self, chosen_q, state):
        return self._pack(self.step(chosen_q, state))


_PACKED = {cls.forward.__code__.co_varnames[1:cls.forward.__code__.co_argcount]: cls
           for cls in (_PackedTeam, _PackedAgent, _PackedSharedAgent, _PackedMonitor)}


def _import(module: nn.Module, sig: Signature):
    from tvm.relax.frontend.torch import from_exported_program

    with torch.no_grad():
        program = _exported(module, sig)
    try:
        return from_exported_program(program)
    except (NotImplementedError, AssertionError) as e:  # how TVM's importer says it lacks an op or a form of one
        if isinstance(e, AssertionError) and "supported" not in str(e):  # not "Unsupported function types [...]"
            raise
        raise KdccError(f"lowering: TVM cannot import the {sig.what} ({type(e).__name__}: {_first_line(e)})") from e


def to_relax(module: nn.Module, spec: MarlSpec | Signature):
    """A step (the team step of `spec`, or any `Signature`) as a TVM Relax IRModule with two entry points:

    - `main` returns the outputs as they are: the C API keeps `new_hidden` as the next step's
      input without a copy (on the GPU too);
    - `main_packed` returns one float32 vector of every output, flattened in order (the team step:
      [actions (n) | q (n·A) | new_hidden (n·H) | q_tot (1)]): from Python, converting four result
      tensors costs more than the step itself (~3.5 µs of ~10).
    """
    from tvm import relax

    sig = _signature(spec)
    mod = _import(module, sig)
    integer = tuple(name in INTEGER_OUTPUTS for name in sig.output_names)
    packed = _import(_PACKED[sig.input_names](module, integer), sig)["main"]
    body = packed.body  # a 1-tuple of the vector: return the vector itself
    seq = relax.BlockBuilder().normalize(relax.SeqExpr(body.blocks, relax.TupleGetItem(body.body, 0)))
    mod["main_packed"] = relax.Function(packed.params, seq, attrs=packed.attrs).with_attr(
        "global_symbol", "main_packed")
    return mod


def onnx_bytes(module: nn.Module, spec: MarlSpec | Signature) -> bytes:
    """A step (the team step of `spec`, or any `Signature`) as a simplified ONNX model; the same inputs
    give the same bytes."""
    import onnx
    import onnxsim

    gm = decompose_recurrent(module).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # per-agent input slices
        sig = _signature(spec)
        torch.onnx.export(gm, sig.example_inputs, buf, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=list(sig.input_names), output_names=list(sig.output_names))
    model = onnx.load_from_string(buf.getvalue())
    model, ok = onnxsim.simplify(model)
    if not ok:
        raise KdccError("lowering: onnxsim could not validate the simplified student.onnx")
    model.producer_name, model.producer_version = "kdcc", ""
    model.doc_string = f"kdcc {sig.what}, inputs {', '.join(sig.input_names)}"
    return model.SerializeToString(deterministic=True)


def to_onnx(module: nn.Module, spec: MarlSpec, path: str | Path) -> Path:
    """Write the team step to `path` as ONNX (atomically) and return the path."""
    path = Path(path)
    atomic_write_bytes(path, onnx_bytes(module, spec))
    return path
