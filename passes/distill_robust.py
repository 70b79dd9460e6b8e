"""The robust term of distill: interval-bound (IBP) training, so the student's certified ε grows.

For every agent step of the unrolled batch (input x, the student's own hidden state h
held fixed, the teacher's greedy action y) IBP bounds the margins q_y − q_a over the
observation box |x_j − x0_j| ≤ ε s_j (s: the dataset's observation std per feature,
zero on the one-hot columns; `kdcc.ir.bounds`). The worst-case logits are
z_a = −lower(q_y − q_a) (z_y = 0), and the term is CE(z, y) (Gowal et al., 2018, "On the
effectiveness of interval bound propagation"): it is small only when every margin is
provably positive with room over the whole box, which is what the certificate checks.
ε ramps linearly from 0 to `robust_eps` over the first half of training, as IBP
training does, so the policy is learnt before it is made robust.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdcc.ir.bounds import agent_graph, margin_bounds_ibp
from kdcc.ir.spec import MarlSpec

__all__ = ["obs_radius", "robust_margin_ce"]


def obs_radius(spec: MarlSpec, obs_std: torch.Tensor) -> torch.Tensor:
    """[n, input_dim]: each agent's observation std on its own observation columns, zero elsewhere."""
    radius = torch.zeros(spec.n_agents, spec.input_dim)
    for i in range(spec.n_agents):
        k = spec.obs_size(i)
        radius[i, :k] = obs_std[i, :k]
    return radius


def _worst_case_ce(net, x, h, radius, labels, eps, avail):
    A = avail.shape[-1]
    eye = torch.eye(A, dtype=x.dtype)
    spec = eye[labels].unsqueeze(1) - eye.unsqueeze(0)
    lower = margin_bounds_ibp(agent_graph(net, x, h, radius), spec, torch.full((len(x),), eps, dtype=x.dtype))
    logits = (-lower).masked_fill(~avail, -1e9)
    return F.cross_entropy(logits, labels)


def robust_margin_ce(agent, spec: MarlSpec, x: torch.Tensor, h: torch.Tensor, labels: torch.Tensor,
                     radius: torch.Tensor, eps: float) -> torch.Tensor:
    """x [B·n, input_dim], h [B·n, H], labels [B·n] (the teacher's greedy actions), radius [n, input_dim]."""
    n = spec.n_agents
    avail = torch.tensor(spec.avail(), dtype=torch.bool)
    rows = x.shape[0]
    if not hasattr(agent, "nets"):
        return _worst_case_ce(agent, x, h, radius.repeat(rows // n, 1), labels, eps, avail.repeat(rows // n, 1))
    losses = []
    for i in range(n):  # one network per agent: its own columns, width and actions
        net, cols, w = agent.get_submodule(f"nets.{i}"), spec.agent_input_cols(i), spec.agent.widths[i]
        losses.append(_worst_case_ce(net, x[i::n][:, cols], h[i::n, :w], radius[i, cols].expand(rows // n, -1),
                                     labels[i::n], eps, avail[i, : spec.action_size(i)].expand(rows // n, -1)))
    return torch.stack(losses).mean()
