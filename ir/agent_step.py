"""One robot's step: its own observation in, its greedy action out; nothing from other agents.

    own network (role agent<i>):  (obs [1, obs_i], last_action [1] i64, hidden [1, w_i])
    shared network (role agent):  (obs [1, obs_dim], last_action [1] i64, hidden [1, H], agent_id [1] i64)
        -> (action [1] i64, q [1, A], new_hidden [1, H])

The input vector is built in-graph by the team step's own definition
(`kdcc.ir.team.agent_inputs`), so an agent acting alone computes what the team
step computes for it: the same network on the same numbers. A shared network on
a team whose agents differ reads padded observations and masks the actions its
agent lacks by the agent index, as the team step does. No global state, no Q_tot:
the mixer is the team monitor's (`MonitorStep`), not needed to act.
"""

from __future__ import annotations

import torch
from torch import nn

from kdcc.ir.roles import Role
from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import agent_inputs

__all__ = ["AgentStep", "SharedAgentStep", "agent_step", "MonitorStep", "agent_example_inputs", "monitor_example_inputs", "AGENT_INPUTS",
           "AGENT_OUTPUTS", "MONITOR_INPUTS"]

AGENT_INPUTS = ("obs", "last_action", "hidden", "agent_id")
AGENT_OUTPUTS = ("action", "q", "new_hidden")
MONITOR_INPUTS = ("chosen_q", "state")


class AgentStep(nn.Module):
    """A role with a network of its own: its own observation and actions, no agent index."""

    def __init__(self, spec: MarlSpec, role: Role, network: nn.Module):
        super().__init__()
        self.role, self.network = role, network
        self.last_action_part = spec.obs_last_action
        self.register_buffer("action_ids", torch.arange(role.n_actions))

    def forward(self, obs, last_action, hidden):
        x = agent_inputs(obs, last_action, self.action_ids if self.last_action_part else None, None)
        q, new_hidden = self.network(x, hidden)
        return torch.argmax(q, dim=-1), q, new_hidden


class SharedAgentStep(AgentStep):
    """A network several agents share: the agent index picks its one-hot and the actions it has."""

    def __init__(self, spec: MarlSpec, role: Role, network: nn.Module):
        super().__init__(spec, role, network)
        self.agent_id_part = spec.obs_agent_id
        self.masked = spec.heterogeneous
        self.register_buffer("agent_ids", torch.arange(spec.n_agents))
        self.register_buffer("unavail_bias", (1.0 - torch.tensor(spec.avail())) * -1e9)

    def forward(self, obs, last_action, hidden, agent_id):
        onehot = (agent_id.unsqueeze(-1) == self.agent_ids).float() if self.agent_id_part else None
        x = agent_inputs(obs, last_action, self.action_ids if self.last_action_part else None, onehot)
        q, new_hidden = self.network(x, hidden)
        scores = q + self.unavail_bias[agent_id] if self.masked else q
        return torch.argmax(scores, dim=-1), q, new_hidden


def agent_step(spec: MarlSpec, role: Role, network: nn.Module) -> AgentStep:
    return (SharedAgentStep if role.shared else AgentStep)(spec, role, network)


class MonitorStep(nn.Module):
    """The team monitor: Q_tot from every agent's chosen Q-value and the global state (a central station's)."""

    def __init__(self, mixer: nn.Module, reads_state: bool = True):
        super().__init__()
        self.mixer = mixer
        self.reads_state = reads_state  # False for a sum (VDN, or no mixer): no node computes from the state

    def forward(self, chosen_q, state):
        return self.mixer(chosen_q, state.reshape(1, -1) if self.reads_state else state).reshape(1)


def agent_example_inputs(spec: MarlSpec, role: Role, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A deterministic probe input for one agent step (to trace, export and verify)."""
    g = torch.Generator().manual_seed(seed)
    inputs = (torch.randn(1, role.obs_dim, generator=g), torch.randint(-1, role.n_actions, (1,), generator=g),
              torch.randn(1, role.hidden_dim, generator=g) * 0.5)
    if role.shared:
        inputs += (torch.tensor([role.agents[seed % len(role.agents)]]),)
    return inputs


def monitor_example_inputs(spec: MarlSpec, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, spec.n_agents, generator=g), torch.randn(spec.state_dim, generator=g)
