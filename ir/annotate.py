"""Shape propagation and per-node cost annotation of a graph.

Runs the graph once on example inputs (`torch.fx.passes.shape_prop.ShapeProp`
writes `node.meta["tensor_meta"]`), then writes an `OpCost` into
`node.meta["cost"]` for every node. Counting rules (per call of the graph):

  Linear [B, i] -> [B, o]         2·B·i·o FLOPs (+B·o bias), weights i·o+o
  GRUCell [B, i], [B, H] -> [B, H]  2·B·3H·(i+H) FLOPs for the two GEMMs + 2·B·3H for
                                    their biases + 10·B·H for gates (3 sigmoid/tanh,
                                    3 mul, 4 add); weights 3H·(i+H)+6H
  matmul / bmm [.., m, k]@[.., k, n]  2·batch·m·k·n
  elementwise / reduce              one FLOP per output (input) element
  views, getitem, placeholders, constants, outputs: free (no kernel)

Bytes are those of float tensors read and written; weights of a layer are
`param_bytes`, everything else `act_bytes`.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from kdcc.ir.opcost import OpCost

__all__ = ["annotate", "node_shape", "graph_costs"]

_FREE_METHODS = {"view", "reshape", "unsqueeze", "squeeze", "size", "contiguous", "expand", "to", "float",
                 "chunk", "split", "t", "transpose", "permute", "flatten"}
_FREE_FUNCTIONS = {operator.getitem, torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze, getattr,
                   torch.chunk, torch.split, torch.t, torch.transpose}
_GEMM_FUNCTIONS = {torch.matmul, torch.bmm, operator.matmul, torch.mm, torch.nn.functional.linear}
_REDUCE = {torch.argmax, torch.sum, torch.max, torch.mean, "argmax", "sum", "max", "mean"}
_DATA = {torch.cat, torch.gather, torch.stack, torch.index_select, torch.nn.functional.embedding,
         "gather", "index_select", "repeat"}


def node_shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _numel(node) -> int:
    if not isinstance(node, fx.Node):
        return 0
    shape = node_shape(node)
    return math.prod(shape) if shape is not None else 0


def _tensor_bytes(nodes) -> int:
    return 4 * sum(_numel(n) for n in nodes)


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters(recurse=True))


def _module_cost(node: fx.Node, module: nn.Module) -> OpCost:
    io = _tensor_bytes(node.all_input_nodes) + _tensor_bytes([node])
    out_shape = node_shape(node) or ()
    batch = math.prod(out_shape[:-1]) if out_shape else 1
    if isinstance(module, nn.Linear):
        flops = 2 * batch * module.in_features * module.out_features
        flops += batch * module.out_features if module.bias is not None else 0
        return OpCost("gemm", flops, _param_bytes(module), io)
    if isinstance(module, nn.GRUCell):
        h, i = module.hidden_size, module.input_size
        flops = 2 * batch * 3 * h * (i + h) + 6 * batch * h + 10 * batch * h
        return OpCost("gemm", flops, _param_bytes(module), io)
    return OpCost("elementwise", _numel(node), _param_bytes(module), io)


def _function_cost(node: fx.Node) -> OpCost:
    target = node.target if node.op == "call_function" else str(node.target)
    io = _tensor_bytes(node.all_input_nodes) + _tensor_bytes([node])
    if target in _FREE_FUNCTIONS or (node.op == "call_method" and target in _FREE_METHODS):
        return OpCost("free")
    if target in _GEMM_FUNCTIONS or target in ("matmul", "bmm"):
        a, b = (node_shape(x) for x in node.all_input_nodes[:2])
        if a is None or b is None:
            return OpCost("gemm", 0, 0, io)
        k = a[-1]
        return OpCost("gemm", 2 * _numel(node) * k, 0, io)
    if target in _REDUCE:
        return OpCost("reduce", sum(_numel(x) for x in node.all_input_nodes), 0, io)
    if target in _DATA:
        return OpCost("data", 0, 0, io)
    return OpCost("elementwise", _numel(node), 0, io)


def annotate(gm: fx.GraphModule, *example_inputs: torch.Tensor) -> fx.GraphModule:
    """Write shapes and OpCosts into `gm`'s node.meta (in place: annotation is analysis, not a rewrite)."""
    with torch.no_grad():
        ShapeProp(gm).propagate(*example_inputs)
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            node.meta["cost"] = OpCost("free")
        elif node.op == "call_module":
            node.meta["cost"] = _module_cost(node, modules[node.target])
        else:
            node.meta["cost"] = _function_cost(node)
    return gm


def graph_costs(gm: fx.GraphModule) -> list[tuple[str, OpCost]]:
    """(node name, OpCost) in graph order, for the cost model; requires `annotate` first."""
    return [(n.name, n.meta["cost"]) for n in gm.graph.nodes]
