"""normalize-eval: put every graph in inference form.

Training-time state must not leak into a compile: modules go to eval mode,
parameters stop requiring gradients, and floating tensors become float32
(the precision the cost model and the backends assume). Exact.
"""

from __future__ import annotations

import torch

from kdcc.ir.program import Program
from kdcc.passes.base import PassContext, register


@register("normalize-eval", "eval mode, no gradients, float32 weights")
def run(program: Program, ctx: PassContext) -> Program:
    out = program.copy()
    changed = 0
    for gm in out.graphs().values():
        gm.eval()
        for t in [*gm.parameters(), *gm.buffers()]:
            if t.is_floating_point() and t.dtype != torch.float32:
                t.data = t.data.float()
                changed += 1
            t.requires_grad_(False)
    return out.with_decision("normalize-eval", converted_to_fp32=changed)
