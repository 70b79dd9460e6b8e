"""fold-constants: evaluate at compile time what depends on weights and constants only.

A node whose inputs are all constants (get_attr nodes: parameters, buffers)
computes the same value at every step, e.g. |W| of a state-independent mixer
or a slice of a weight. It is replaced by a single constant holding that
value (a buffer named `_folded_<node>`), so the device never recomputes it.
`Program.parameter_count` still counts such a buffer: it is a weight, stored.
Exact up to float rounding of the folded expression, which is the same.
"""

from __future__ import annotations

import torch
from torch import fx

from kdcc.ir.graph_utils import attribute as _attr
from kdcc.ir.graph_utils import drop_unused_attributes
from kdcc.ir.program import FOLDED_PREFIX, Program
from kdcc.passes.base import PassContext, register


def _fold(gm: fx.GraphModule) -> list[str]:
    constant: dict[fx.Node, torch.Tensor] = {}
    folded: list[str] = []
    for node in list(gm.graph.nodes):
        if node.op == "get_attr":
            constant[node] = _attr(gm, node.target)
            continue
        if node.op not in ("call_function", "call_method") or not node.all_input_nodes:
            continue
        if not all(n in constant for n in node.all_input_nodes):
            continue
        args = fx.node.map_arg(node.args, lambda n: constant[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: constant[n])
        with torch.no_grad():
            if node.op == "call_function":
                value = node.target(*args, **kwargs)
            else:
                value = getattr(args[0], node.target)(*args[1:], **kwargs)
        if not isinstance(value, torch.Tensor):
            continue
        name = f"{FOLDED_PREFIX}{node.name}"
        gm.register_buffer(name, value.detach().clone())
        with gm.graph.inserting_before(node):
            const = gm.graph.get_attr(name)
        node.replace_all_uses_with(const)
        gm.graph.erase_node(node)
        constant[const] = value
        folded.append(node.name)
    if folded:
        gm.graph.eliminate_dead_code()
        drop_unused_attributes(gm)
    return folded


@register("fold-constants", "precompute nodes that depend on constants only")
def run(program: Program, ctx: PassContext) -> Program:
    out = program.copy()
    folded = {name: f for name, gm in out.graphs().items() if (f := _fold(gm))}
    return out.with_decision("fold-constants", folded=folded)
