"""batch-agents: per-agent networks as one batched matmul per layer, when the cost model says it pays.

A heterogeneous student (one network per agent, `prune`) costs a kernel per
agent per layer; on small networks those launches, not the arithmetic, set the
latency. `kdcc.marl.batched_agents.BatchedAgents` zero-pads the networks to the
widest and stacks them, so each layer is one `bmm` over the agents: exact (see
that module), fewer kernels, more FLOPs (the padding). The whole team step is
costed both ways on the device the cost model recommends, and the batched form
is kept only if its estimated latency is lower and the padding keeps it within
the limits prune sized the student to (a team-step FLOP budget, say; a robot runs
its own network, unbatched, so a robot budget is unaffected). Measured on the host
(speaker–listener, GRU widths 16 and 16, bench/heterogeneous.py): 5.16 → 3.57 µs
per call.
"""

from __future__ import annotations

from kdcc.ir.printer import team_ops
from kdcc.ir.program import Program, trace
from kdcc.marl.batched_agents import BatchedAgents
from kdcc.passes.base import PassContext, register


def _cost(program: Program, ctx: PassContext) -> tuple[dict[str, float], str]:
    from kdcc.targets.cost_model import step_cost

    cost, device = step_cost(team_ops(program), ctx.profile)
    return cost, device.name


@register("batch-agents", "run one network per agent as one batched matmul per layer, if the cost model "
          "estimates it faster (and the padding keeps the student within prune's budget)")
def run(program: Program, ctx: PassContext) -> Program:
    if not program.spec.agent.split:
        return program.with_decision("batch-agents", applied=False, reason="one shared network: batched already")
    if program.team is not None:
        return program.with_decision("batch-agents", applied=False, reason="the team graph is already fused")
    batched = program.copy(agent=trace(BatchedAgents(program.agent, program.spec).eval(), "Agent"))
    before, device = _cost(program, ctx)
    after, _ = _cost(batched, ctx)
    # the limits prune sized the student to: the padding's FLOPs and bytes must not break them
    limits = next((d["limits"] for d in reversed(program.history) if d.get("pass") == "prune"), {})
    decision = {"device": device, "estimate_us": {"separate": round(before["latency_us"], 4),
                                                  "batched": round(after["latency_us"], 4)}}
    # a robot runs its own network, not the batched one: only a team budget sees the padding
    over = [k for k, v in limits.items() if after[k] > v] if ctx.budget.scope == "team" else []
    if over:
        return program.with_decision("batch-agents", applied=False, **decision,
                                     reason=f"padding would exceed the budget's {', '.join(over)}")
    if after["latency_us"] >= before["latency_us"]:
        return program.with_decision("batch-agents", applied=False, **decision)
    return batched.with_decision("batch-agents", applied=True, **decision)
