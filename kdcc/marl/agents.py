"""Decentralised execution: every agent a policy of its own, fed only its own observation.

`agent_steps(program)` gives each role's one-robot step (`kdcc.ir.agent_step`);
`AgentPolicy` is one robot — its hidden state and its own last action stay
inside, and it is given nothing but its own observation; `DecentralisedPolicy`
runs one per agent behind the team `Policy` interface, so `run_episodes` can
score a team of robots that never exchange anything.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdcc.ir.agent_step import agent_step
from kdcc.ir.program import Program, trace
from kdcc.ir.roles import Role, role_of, team_roles
from kdcc.ir.spec import MarlSpec
from kdcc.marl.batched_agents import own_network
from kdcc.marl.qmix import RNNAgent

__all__ = ["role_network", "agent_steps", "AgentPolicy", "DecentralisedPolicy"]


def role_network(program: Program, role: Role) -> nn.Module:
    """The network a role runs: the shared agent, or agent i's own (cut out of a batched student)."""
    if role.shared:
        return program.agent
    spec, i = program.spec, role.agents[0]
    try:
        weights = program.agent.get_submodule(f"nets.{i}").state_dict()
    except AttributeError:  # batch-agents stacked the networks: take agent i's weights back out
        return own_network(program.agent, spec, i)
    net = RNNAgent(len(spec.agent_input_cols(i)), role.hidden_dim, role.n_actions, use_rnn=spec.recurrent)
    net.load_state_dict(weights)  # a traced SplitAgents keeps each network's weights, not its forward
    return net.eval()


def agent_steps(program: Program) -> dict[str, nn.Module]:
    """Each role's one-robot step as a traced graph, by role name."""
    return {r.name: trace(agent_step(program.spec, r, role_network(program, r)).eval(), "AgentStep")
            for r in team_roles(program.spec)}


class AgentPolicy:
    """One robot: `act(own_obs)` -> its action; its hidden state and last action never leave it."""

    def __init__(self, spec: MarlSpec, agent: int, step: nn.Module):
        self.role, self.agent, self.step_fn = role_of(spec, agent), agent, step
        self.obs_size = spec.obs_size(agent)
        self.agent_id = torch.tensor([agent])
        self.reset()

    def reset(self) -> None:
        self.hidden = torch.zeros(1, self.role.hidden_dim)
        self.last_action = torch.tensor([-1])

    @torch.no_grad()
    def act(self, own_obs: np.ndarray) -> int:
        obs = torch.zeros(1, self.role.obs_dim)
        obs[0, : self.obs_size] = torch.from_numpy(np.asarray(own_obs, dtype=np.float32)[: self.obs_size])
        args = (obs, self.last_action, self.hidden) + ((self.agent_id,) if self.role.shared else ())
        action, _, self.hidden = self.step_fn(*args)
        self.last_action = action
        return int(action[0])


class DecentralisedPolicy:
    """A team of independent robots behind the team Policy interface (last actions and state unused)."""

    def __init__(self, agents: list):
        self.agents = agents

    @classmethod
    def from_program(cls, program: Program) -> "DecentralisedPolicy":
        steps = agent_steps(program)
        spec = program.spec
        return cls([AgentPolicy(spec, i, steps[role_of(spec, i).name]) for i in range(spec.n_agents)])

    def reset(self) -> None:
        for a in self.agents:
            a.reset()

    def step(self, obs, last_actions, state):
        return np.array([a.act(obs[i]) for i, a in enumerate(self.agents)], dtype=np.int64)
