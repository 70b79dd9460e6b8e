"""Roles: what each robot of the team runs, decided by the spec alone.

QMIX teams are trained centrally and executed decentrally: every robot runs
its own agent on its own observation. A student whose agents share one network
has one role, `agent`, run by every agent (the agent index is a create-time
parameter: it picks the agent-id one-hot and the actions the agent has). A
student with one network per agent (`agent.split`) has a role per agent,
`agent<i>`, each with its own width and reading only its own inputs, so a
robot installs only its own network.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcc.ir.spec import MarlSpec

__all__ = ["Role", "team_roles", "role_of"]


@dataclass(frozen=True)
class Role:
    name: str
    agents: tuple[int, ...]  # the agent indices that run this role
    obs_dim: int  # the observation the role's graph takes (a shared role: padded to the widest)
    n_actions: int  # Q-values it returns
    hidden_dim: int
    shared: bool  # one network for several agents: the graph also takes the agent index

    def to_dict(self) -> dict:
        return {"name": self.name, "agents": list(self.agents), "obs_dim": self.obs_dim,
                "n_actions": self.n_actions, "hidden_dim": self.hidden_dim, "shared": self.shared}


def team_roles(spec: MarlSpec) -> list[Role]:
    if not spec.agent.split:
        return [Role("agent", tuple(range(spec.n_agents)), spec.obs_dim, spec.n_actions, spec.agent.hidden_dim, True)]
    return [Role(f"agent{i}", (i,), spec.obs_size(i), spec.action_size(i), w, False)
            for i, w in enumerate(spec.agent.widths)]


def role_of(spec: MarlSpec, agent: int) -> Role:
    return next(r for r in team_roles(spec) if agent in r.agents)
