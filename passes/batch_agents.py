"""batch-agents: per-agent networks as one batched matmul per layer, when the cost model says it pays.

A heterogeneous student (one network per agent, `prune`) costs a kernel per
agent per layer; on small networks those launches, not the arithmetic, set the
latency. `kdcc.batched_agents.BatchedAgents` zero-pads the networks to the
widest and stacks them, so each layer is one `bmm` over the agents: exact (see
that module), fewer kernels, more FLOPs (the padding). The whole team step is
costed both ways on the device the cost model recommends, and the batched form
is kept only if its estimated latency is lower. Measured on the host (2 cores,
GRU widths 16 and 24, speaker–listener): 7.69 → 6.51 µs per call.
"""

from __future__ import annotations


from kdcc.batched_agents import BatchedAgents
from kdcc.ir.printer import team_ops
from kdcc.ir.program import Program, trace
from kdcc.passes.base import PassContext, register


def _latency(program: Program, ctx: PassContext) -> tuple[float, str]:
    from kdcc.targets.cost_model import choose_device, estimate

    ops = team_ops(program)
    device = choose_device(ops, ctx.profile)[0]
    return estimate(ops, device).total.latency_us, device.name


@register("batch-agents", "run one network per agent as one batched matmul per layer, if the cost model "
          "estimates it faster")
def run(program: Program, ctx: PassContext) -> Program:
    if not program.spec.agent.split:
        return program.with_decision("batch-agents", applied=False, reason="one shared network: batched already")
    if program.team is not None:
        return program.with_decision("batch-agents", applied=False, reason="the team graph is already fused")
    batched = program.copy(agent=trace(BatchedAgents(program.agent, program.spec).eval(), "Agent"))
    before, device = _latency(program, ctx)
    after, _ = _latency(batched, ctx)
    decision = {"device": device, "estimate_us": {"separate": round(before, 4), "batched": round(after, 4)}}
    if after >= before:
        return program.with_decision("batch-agents", applied=False, **decision)
    return batched.with_decision("batch-agents", applied=True, **decision)
