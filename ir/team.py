"""The team step: every agent and the mixer in one call, the unit kdcc compiles.

    (obs [n, obs_dim], last_actions [n] int64, hidden [n, H], state [S])
        -> (actions [n] int64, q [n, A], new_hidden [n, H], q_tot [1])

Agents share weights, so the agent network runs once with the agents as its
batch (one GEMM per layer instead of one per agent); a student with one network
per agent (`kdcc.marl.qmix.SplitAgents`) runs each on its agent's row. Input construction lives
in the graph: last action -1 means "none yet" and gives an all-zero one-hot;
the agent-id one-hot is a constant. Actions are greedy over the actions each
agent has (`avail`), and Q_tot is the mixer's value of those greedy actions.
A mixer that is a sum (VDN; none for IQL and actor-critic) does not read the
state: the input stays in the signature, and nothing in the graph computes from it.
"""

from __future__ import annotations

import torch
from torch import nn

from kdcc.ir.spec import MarlSpec

__all__ = ["TeamStep", "team_example_inputs", "agent_inputs"]


def agent_inputs(obs: torch.Tensor, last_actions: torch.Tensor, action_ids: torch.Tensor | None,
                 agent_onehot: torch.Tensor | None) -> torch.Tensor:
    """The one definition of an agent's input vector: obs ‖ one_hot(last action) ‖ one_hot(agent id).

    A last action of -1 ("none yet") gives an all-zero one-hot, as EPyMARL feeds its agents;
    a part whose ids are None is left out (the spec's obs_last_action / obs_agent_id)."""
    parts = [obs]
    if action_ids is not None:
        parts.append((last_actions.unsqueeze(-1) == action_ids).float())
    if agent_onehot is not None:
        parts.append(agent_onehot)
    return torch.cat(parts, dim=-1)


class TeamStep(nn.Module):
    def __init__(self, spec: MarlSpec, agent: nn.Module, mixer: nn.Module, avail: torch.Tensor | None = None):
        super().__init__()
        self.spec = spec
        self.agent = agent
        self.mixer = mixer
        n, a = spec.n_agents, spec.n_actions
        self.register_buffer("action_ids", torch.arange(a))
        self.register_buffer("agent_ids", torch.eye(n))
        avail = torch.tensor(spec.avail()) if avail is None else avail.float()
        self.register_buffer("unavail_bias", (1.0 - avail) * -1e9)

    def forward(self, obs, last_actions, hidden, state):
        x = agent_inputs(obs, last_actions, self.action_ids if self.spec.obs_last_action else None,
                         self.agent_ids if self.spec.obs_agent_id else None)
        q, new_hidden = self.agent(x, hidden)
        actions = torch.argmax(q + self.unavail_bias, dim=-1)
        chosen = torch.gather(q, 1, actions.unsqueeze(-1)).reshape(1, -1)
        q_tot = self.mixer(chosen, state if self.spec.sums else state.reshape(1, -1)).reshape(1)
        return actions, q, new_hidden, q_tot


def team_example_inputs(spec: MarlSpec, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A deterministic probe input for one team step (used to trace, export and verify)."""
    g = torch.Generator().manual_seed(seed)
    n = spec.n_agents
    return (
        torch.randn(n, spec.obs_dim, generator=g),
        torch.randint(-1, spec.n_actions, (n,), generator=g),
        torch.randn(n, spec.agent.hidden_dim, generator=g) * 0.5,
        torch.randn(spec.state_dim, generator=g),
    )
