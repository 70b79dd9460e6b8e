"""What the IR says about one graph node's work, for the target cost model.

`ir.annotate` writes one `OpCost` into `node.meta["cost"]` of every node of a
graph; `kdcc.targets.cost_model` turns a sequence of them into latency and
energy on a device. Counting is per team step (all agents, one call).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OpCost", "OP_KINDS"]

# gemm: matrix products (Linear, bmm, matmul); elementwise: activations, adds, gates;
# reduce: argmax, sums; data: gathers, concatenations, copies; free: views, placeholders,
# constants and outputs that launch no kernel.
OP_KINDS = ("gemm", "elementwise", "reduce", "data", "free")


@dataclass(frozen=True)
class OpCost:
    kind: str
    flops: int = 0  # multiply-add counts as 2
    param_bytes: int = 0  # weights this node reads
    act_bytes: int = 0  # activations read + written

    @property
    def bytes(self) -> int:
        return self.param_bytes + self.act_bytes
