"""fuse-team: one batched team graph out of the agent graph and the mixer graph.

Agents share weights, so instead of n calls of the agent network (n small
GEMVs per layer) the team graph runs it once with the agents as the batch
dimension (one GEMM per layer), builds the agent inputs in-graph (one-hot of
the last action by comparison with a constant, agent ids as a constant),
takes the greedy actions over each agent's available actions (the spec's
`avail()`, which is the scenario's: teachers are loaded with its per-agent
action sizes), and appends the mixer so a single call maps

    (obs, last_actions, hidden, state) -> (actions, q, new_hidden, q_tot).

A student with one network per agent (heterogeneous teams) runs each agent's
network on its own slice of the inputs inside the same graph, so the one call
and its interface are unchanged.

Exact: the outputs equal the agent graph run per agent followed by the mixer.
"""

from __future__ import annotations

from kdcc.ir.program import Program, trace
from kdcc.ir.team import TeamStep
from kdcc.passes.base import PassContext, register


@register("fuse-team", "fuse agents (batched, shared weights) and the mixer into one team-step graph")
def run(program: Program, ctx: PassContext) -> Program:
    if program.team is not None:
        return program.with_decision("fuse-team", applied=False, reason="already fused")
    src = program.copy()
    team = trace(TeamStep(src.spec, src.agent, src.mixer).eval(), "Team")
    out = src.copy(team=team)
    if src.spec.agent.split:
        return out.with_decision("fuse-team", applied=True, agent_networks=src.spec.n_agents,
                                 nodes=len(team.graph.nodes))
    return out.with_decision("fuse-team", applied=True, agents_batched=src.spec.n_agents,
                             nodes=len(team.graph.nodes))
