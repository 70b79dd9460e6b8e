"""QMIX networks with EPyMARL/PyMARL parameter names, so their checkpoints load as-is.

Agent:  q, h' = fc2(GRUCell(relu(fc1(x)), h))     (or relu(Linear) when feed-forward)
Mixer:  Q_tot = elu(q · |W1(s)| + b1(s)) · |W_final(s)| + V(s)
The absolute values make Q_tot monotonic in every agent's q (the QMIX constraint).
A "static" mixer keeps the same form with state-independent weights, and a "hyper" mixer
keeps the state-dependent weights but makes them from one small shared state embedding:
the cheap monotonic approximations the compiler can substitute for the hypernetworks.
VDN's mixer is a plain sum (`SumMixer`, no weights); IQL and actor-critic teachers
have no mixer, and their team step reports the same sum as a monitoring value.
The agent network is the same for every algorithm: an actor's fc2 outputs logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import agent_inputs

__all__ = ["RNNAgent", "SplitAgents", "QMixer", "StaticMixer", "HyperMixer", "SumMixer", "build_agent", "build_mixer", "build_inputs"]


class RNNAgent(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int, use_rnn: bool = True):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.use_rnn = use_rnn
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim) if use_rnn else nn.Linear(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def init_hidden(self, batch: int) -> torch.Tensor:
        return self.fc1.weight.new_zeros(batch, self.hidden_dim)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc1(inputs))
        if self.use_rnn:
            h = self.rnn(x, hidden.reshape(-1, self.hidden_dim))
        else:
            h = F.relu(self.rnn(x))
        return self.fc2(h), h


class SplitAgents(nn.Module):
    """One network per agent (a heterogeneous student), behind the shared agent's interface.

    Takes the padded inputs [B·n, input_dim] and hidden [B·n, hidden_dim] a shared
    agent takes; agent i's network reads only its own columns (`MarlSpec.agent_input_cols`),
    has width widths[i] and outputs its own actions; Q-values and hidden states are
    zero-padded back to [B·n, n_actions] and [B·n, hidden_dim].
    """

    def __init__(self, spec: MarlSpec):
        super().__init__()
        self.n, self.input_dim, self.hidden_dim, self.n_actions = (spec.n_agents, spec.input_dim,
                                                                   spec.agent.hidden_dim, spec.n_actions)
        self.widths = tuple(spec.agent.widths)
        self.cols = [spec.agent_input_cols(i) for i in range(self.n)]
        self.nets = nn.ModuleList(
            RNNAgent(len(self.cols[i]), w, spec.action_size(i), use_rnn=spec.recurrent)
            for i, w in enumerate(self.widths))

    def init_hidden(self, batch: int) -> torch.Tensor:
        return self.nets[0].fc1.weight.new_zeros(batch, self.hidden_dim)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = inputs.reshape(-1, self.n, self.input_dim)
        h = hidden.reshape(-1, self.n, self.hidden_dim)
        qs, hs = [], []
        for i, net in enumerate(self.nets):
            xi = torch.cat([x[:, i, c0:c1] for c0, c1 in _runs(self.cols[i])], dim=-1)
            q, h_new = net(xi, h[:, i, : self.widths[i]])
            qs.append(F.pad(q, (0, self.n_actions - net.fc2.out_features)))
            hs.append(F.pad(h_new, (0, self.hidden_dim - self.widths[i])))
        return torch.stack(qs, 1).reshape(-1, self.n_actions), torch.stack(hs, 1).reshape(-1, self.hidden_dim)


def _runs(cols: list[int]) -> list[tuple[int, int]]:
    """Contiguous [start, stop) runs of sorted column indices: slices trace to cheap views."""
    runs: list[tuple[int, int]] = []
    for c in cols:
        if runs and runs[-1][1] == c:
            runs[-1] = (runs[-1][0], c + 1)
        else:
            runs.append((c, c + 1))
    return runs


def _hypernet(state_dim: int, out: int, layers: int, embed: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(state_dim, out)
    return nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, out))


class QMixer(nn.Module):
    def __init__(self, n_agents: int, state_dim: int, embed_dim: int, hypernet_layers: int = 2,
                 hypernet_embed: int = 64):
        super().__init__()
        self.n_agents, self.state_dim, self.embed_dim = n_agents, state_dim, embed_dim
        self.hyper_w_1 = _hypernet(state_dim, embed_dim * n_agents, hypernet_layers, hypernet_embed)
        self.hyper_w_final = _hypernet(state_dim, embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_b_1 = nn.Linear(state_dim, embed_dim)
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs [B, n_agents], states [B, state_dim] -> Q_tot [B, 1]."""
        qs = agent_qs.reshape(-1, 1, self.n_agents)
        s = states.reshape(-1, self.state_dim)
        w1 = torch.abs(self.hyper_w_1(s)).view(-1, self.n_agents, self.embed_dim)
        b1 = self.hyper_b_1(s).view(-1, 1, self.embed_dim)
        hidden = F.elu(torch.bmm(qs, w1) + b1)
        w_final = torch.abs(self.hyper_w_final(s)).view(-1, self.embed_dim, 1)
        v = self.V(s).view(-1, 1, 1)
        return (torch.bmm(hidden, w_final) + v).reshape(-1, 1)


class StaticMixer(nn.Module):
    """Monotonic mixer whose weights do not depend on the state; only V(s) does."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int):
        super().__init__()
        self.n_agents, self.state_dim, self.embed_dim = n_agents, state_dim, embed_dim
        self.w_1 = nn.Parameter(torch.rand(n_agents, embed_dim) / n_agents)
        self.b_1 = nn.Parameter(torch.zeros(embed_dim))
        self.w_final = nn.Parameter(torch.rand(embed_dim, 1) / embed_dim)
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs [B, n_agents], states [B, state_dim] -> Q_tot [B, 1]."""
        hidden = F.elu(agent_qs @ torch.abs(self.w_1) + self.b_1)
        return hidden @ torch.abs(self.w_final) + self.V(states)


class HyperMixer(nn.Module):
    """QMIX's form from one small state embedding: z = relu(A·s + a) of width H, then

        W1(s) = |B1·z + c1|,  b1(s) = Bb·z + cb,  w_f(s) = |Bf·z + cf|,  V(s) = Bv·z + cv,
        Q_tot = elu(q · W1(s) + b1(s)) · w_f(s) + V(s).

    The absolute values keep ∂Q_tot/∂q_i ≥ 0 for every state (elu is increasing), as in QMIX.
    One shared trunk instead of four hypernetworks of width 64: ~S·H + H·(n+2)·E + H
    multiply-adds, a few thousand FLOPs for MPE's spread instead of ~40k."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int, hidden: int):
        super().__init__()
        self.n_agents, self.state_dim, self.embed_dim = n_agents, state_dim, embed_dim
        self.trunk = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU())
        self.w_1 = nn.Linear(hidden, n_agents * embed_dim)
        self.b_1 = nn.Linear(hidden, embed_dim)
        self.w_final = nn.Linear(hidden, embed_dim)
        self.V = nn.Linear(hidden, 1)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs [B, n_agents], states [B, state_dim] -> Q_tot [B, 1]."""
        qs = agent_qs.reshape(-1, 1, self.n_agents)
        z = self.trunk(states.reshape(-1, self.state_dim))
        w1 = torch.abs(self.w_1(z)).view(-1, self.n_agents, self.embed_dim)
        hidden = F.elu(torch.bmm(qs, w1) + self.b_1(z).view(-1, 1, self.embed_dim))
        w_final = torch.abs(self.w_final(z)).view(-1, self.embed_dim, 1)
        return (torch.bmm(hidden, w_final) + self.V(z).view(-1, 1, 1)).reshape(-1, 1)


class SumMixer(nn.Module):
    """Q_tot = Σ_i q_i: VDN's mixer (EPyMARL's VDNMixer, whose state dict is empty), and the monitoring
    value kdcc reports where no mixer was trained. The state is taken and not read, so every mixer has
    one signature."""

    def __init__(self, n_agents: int):
        super().__init__()
        self.n_agents = n_agents

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs [B, n_agents], states [B, state_dim] (unused) -> Q_tot [B, 1]."""
        return agent_qs.reshape(-1, self.n_agents).sum(-1, keepdim=True)


def build_agent(spec: MarlSpec) -> nn.Module:
    if spec.agent.split:
        return SplitAgents(spec)
    return RNNAgent(spec.input_dim, spec.agent.hidden_dim, spec.n_actions, use_rnn=spec.recurrent)


def build_mixer(spec: MarlSpec) -> nn.Module:
    m = spec.mixer
    if m.kind in ("vdn", "none"):
        return SumMixer(spec.n_agents)
    if m.kind == "static":
        return StaticMixer(spec.n_agents, spec.state_dim, m.embed_dim)
    if m.kind == "hyper":
        return HyperMixer(spec.n_agents, spec.state_dim, m.embed_dim, m.hypernet_embed)
    return QMixer(spec.n_agents, spec.state_dim, m.embed_dim, m.hypernet_layers, m.hypernet_embed)


def build_inputs(spec: MarlSpec, obs: torch.Tensor, last_actions: torch.Tensor) -> torch.Tensor:
    """obs [B, n, obs_dim], last_actions [B, n] (int, -1 = none yet) -> inputs [B, n, input_dim].

    Batched over steps for training; the construction itself is `kdcc.ir.team.agent_inputs`.
    """
    batch, n = obs.shape[0], spec.n_agents
    return agent_inputs(obs, last_actions.long(), torch.arange(spec.n_actions) if spec.obs_last_action else None,
                        torch.eye(n, dtype=obs.dtype).expand(batch, n, n) if spec.obs_agent_id else None)
