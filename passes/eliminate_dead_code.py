"""eliminate-dead-code: drop nodes whose results nothing uses, and the weights only they used.

A student built by pruning or fusion can leave computations behind (e.g. a
hidden state output of a feed-forward agent, or weights of a replaced mixer).
Removing them is exact: outputs do not change.
"""

from __future__ import annotations

from kdcc.ir.graph_utils import drop_unused_attributes
from kdcc.ir.program import Program
from kdcc.passes.base import PassContext, register


@register("eliminate-dead-code", "remove unused nodes and the submodules only they used")
def run(program: Program, ctx: PassContext) -> Program:
    out = program.copy()
    removed: dict[str, list[str]] = {}
    for name, gm in out.graphs().items():
        before = [n.name for n in gm.graph.nodes]
        gm.graph.eliminate_dead_code()
        drop_unused_attributes(gm)
        kept = {n.name for n in gm.graph.nodes}
        gone = [n for n in before if n not in kept]
        if gone:
            removed[name] = gone
    return out.with_decision("eliminate-dead-code", removed=removed)
