"""One network per agent, run as one batched matmul per layer.

A student with one network per agent (`kdcc.marl.qmix.SplitAgents`) runs each agent's
layers as separate kernels. Zero-padding every agent's network to the widest
(`hidden_dim`) and stacking the weights agent-major ([n, in, out]) turns each
layer into one `bmm` over the agents. The padding changes nothing:

* fc1 reads the whole padded input vector, but agent i's weight rows outside its
  own columns are zero and its agent-id one-hot is already folded into its bias;
* a padded hidden unit has zero weights and biases, so its pre-activations are 0,
  and its output is multiplied by a constant 0/1 mask (a GRU would otherwise carry
  z·h = h/2 of whatever the caller passed in a padded column);
* fc2's padded rows and the actions an agent lacks are zero, so q is 0 there, as
  SplitAgents pads it.

Same interface as SplitAgents: inputs [B·n, input_dim], hidden [B·n, hidden_dim].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdcc.ir.spec import MarlSpec

__all__ = ["BatchedAgents", "own_network"]


def _gates_t(weight: torch.Tensor, w: int, W: int, rows_in: int) -> torch.Tensor:
    """A GRUCell weight [3w, in] as [rows_in, 3W]: gate g's block transposed into columns g·W .. g·W + w."""
    out = torch.zeros(rows_in, 3 * W)
    for g in range(3):
        out[: weight.shape[1], g * W: g * W + w] = weight[g * w: (g + 1) * w].T
    return out


def _gates_b(bias: torch.Tensor, w: int, W: int) -> torch.Tensor:
    out = torch.zeros(3 * W)
    for g in range(3):
        out[g * W: g * W + w] = bias[g * w: (g + 1) * w]
    return out


class BatchedAgents(nn.Module):
    def __init__(self, split: nn.Module, spec: MarlSpec):
        """`split`: a SplitAgents (or its traced graph) of `spec` (which has `agent.widths`)."""
        super().__init__()
        n, D, W, A = spec.n_agents, spec.input_dim, spec.agent.hidden_dim, spec.n_actions
        self.n, self.input_dim, self.hidden_dim, self.n_actions = n, D, W, A
        self.recurrent = spec.recurrent
        p = {name: torch.zeros(n, *shape) for name, shape in (
            ("fc1_w", (D, W)), ("fc1_b", (W,)), ("fc2_w", (W, A)), ("fc2_b", (A,)))}
        if self.recurrent:
            p.update({name: torch.zeros(n, *shape) for name, shape in (
                ("rnn_wi", (W, 3 * W)), ("rnn_wh", (W, 3 * W)), ("rnn_bi", (3 * W,)), ("rnn_bh", (3 * W,)))})
        else:
            p.update(rnn_w=torch.zeros(n, W, W), rnn_b=torch.zeros(n, W))
        mask = torch.zeros(n, W)
        with torch.no_grad():
            for i, w in enumerate(spec.agent.widths):
                net = split.get_submodule(f"nets.{i}")
                a = spec.action_size(i)
                p["fc1_w"][i][spec.agent_input_cols(i), :w] = net.fc1.weight.T
                p["fc1_b"][i, :w] = net.fc1.bias
                if self.recurrent:
                    p["rnn_wi"][i] = _gates_t(net.rnn.weight_ih, w, W, W)
                    p["rnn_wh"][i] = _gates_t(net.rnn.weight_hh, w, W, W)
                    p["rnn_bi"][i] = _gates_b(net.rnn.bias_ih, w, W)
                    p["rnn_bh"][i] = _gates_b(net.rnn.bias_hh, w, W)
                else:
                    p["rnn_w"][i, :w, :w] = net.rnn.weight.T
                    p["rnn_b"][i, :w] = net.rnn.bias
                p["fc2_w"][i, :w, :a] = net.fc2.weight.T
                p["fc2_b"][i, :a] = net.fc2.bias
                mask[i, :w] = 1.0
        for name, value in p.items():
            setattr(self, name, nn.Parameter(value, requires_grad=False))
        self.register_buffer("unit_mask", mask.unsqueeze(1))  # [n, 1, W]

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, W = self.n, self.hidden_dim
        x = inputs.reshape(-1, n, self.input_dim).transpose(0, 1)  # [n, B, D]: one matmul per agent, batched
        a = F.relu(torch.bmm(x, self.fc1_w) + self.fc1_b.unsqueeze(1))
        if self.recurrent:
            h = hidden.reshape(-1, n, W).transpose(0, 1)
            i_r, i_z, i_n = (torch.bmm(a, self.rnn_wi) + self.rnn_bi.unsqueeze(1)).chunk(3, dim=-1)
            h_r, h_z, h_n = (torch.bmm(h, self.rnn_wh) + self.rnn_bh.unsqueeze(1)).chunk(3, dim=-1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            cand = torch.tanh(i_n + r * h_n)
            h_new = (cand + z * (h - cand)) * self.unit_mask
        else:
            h_new = F.relu(torch.bmm(a, self.rnn_w) + self.rnn_b.unsqueeze(1))
        q = torch.bmm(h_new, self.fc2_w) + self.fc2_b.unsqueeze(1)
        return (q.transpose(0, 1).reshape(-1, self.n_actions), h_new.transpose(0, 1).reshape(-1, W))


def own_network(batched: nn.Module, spec: MarlSpec, i: int) -> nn.Module:
    """Agent i's network cut back out of a BatchedAgents (or its traced graph): exact, no padding.

    The inverse of the stacking above, so a robot runs only its own weights."""
    from kdcc.marl.qmix import RNNAgent

    w, a, cols = spec.agent.widths[i], spec.action_size(i), spec.agent_input_cols(i)
    W = spec.agent.hidden_dim
    net = RNNAgent(len(cols), w, a, use_rnn=spec.recurrent)
    p = dict(batched.named_parameters())
    with torch.no_grad():
        net.fc1.weight.copy_(p["fc1_w"][i][cols, :w].T)
        net.fc1.bias.copy_(p["fc1_b"][i, :w])
        if spec.recurrent:
            for name, mine in (("rnn_wi", net.rnn.weight_ih), ("rnn_wh", net.rnn.weight_hh)):
                for g in range(3):
                    mine[g * w: (g + 1) * w] = p[name][i][:w, g * W: g * W + w].T
            for name, mine in (("rnn_bi", net.rnn.bias_ih), ("rnn_bh", net.rnn.bias_hh)):
                for g in range(3):
                    mine[g * w: (g + 1) * w] = p[name][i, g * W: g * W + w]
        else:
            net.rnn.weight.copy_(p["rnn_w"][i, :w, :w].T)
            net.rnn.bias.copy_(p["rnn_b"][i, :w])
        net.fc2.weight.copy_(p["fc2_w"][i, :w, :a].T)
        net.fc2.bias.copy_(p["fc2_b"][i, :a])
    return net.eval()
