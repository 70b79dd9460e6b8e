"""The distillation loss terms, as pure functions of tensors (each tested on a known case).

  policy      KL(softmax(q_T/τ) ‖ softmax(q_S/τ)) + CE(q_S/τ, argmax q_T), and a scaled
              regression of the Q-values themselves (softmax ignores their offset, but the
              student mixer needs Q on the teacher's scale)
  relation    mean over steps of ‖G_S − G_T‖² / n², G = cosine-similarity matrix of the
              agents' embeddings at one step (n×n; compares students of any width)
  value       mean (Q_tot,S − Q_tot,T)² / var(Q_tot,T): the student mixer reproduces the teacher's
  resource    Σ_layers c_layer · mean_j ‖θ_j‖₂: group lasso on whole hidden units, each
              layer weighted by what one of its units costs on the target (cost model)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["policy_kl", "q_regression", "greedy_ce", "relation", "value", "resource", "gru_unit_norms"]


def policy_kl(q_student: torch.Tensor, q_teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(p_T ‖ p_S) with p = softmax(q/τ) over the last dim, averaged over the rest.

    τ is on the scale of the teacher's action gaps (QMIX per-agent Q-values often differ
    by ~1e-2 between actions), so the usual τ² factor is left out: it would vanish.
    """
    log_ps = F.log_softmax(q_student / tau, dim=-1)
    log_pt = F.log_softmax(q_teacher / tau, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    return kl.mean()


def q_regression(q_student: torch.Tensor, q_teacher: torch.Tensor, avail: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared Q error over the teacher's Q variance (scale-free); with `avail` [n, A] (1 = the agent
    has the action), over the actions agents have only."""
    if avail is None:
        return ((q_student - q_teacher) ** 2).mean() / (q_teacher.var() + 1e-6)
    m = avail.expand_as(q_teacher).bool()
    return ((q_student - q_teacher)[m] ** 2).mean() / (q_teacher[m].var() + 1e-6)


def greedy_ce(q_student: torch.Tensor, q_teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Cross-entropy of softmax(q_S/τ) to the teacher's greedy action."""
    logits = q_student.reshape(-1, q_student.shape[-1]) / tau
    return F.cross_entropy(logits, q_teacher.argmax(-1).reshape(-1))


def _similarity(emb: torch.Tensor) -> torch.Tensor:
    e = F.normalize(emb, dim=-1)
    return e @ e.transpose(-1, -2)


def relation(emb_student: torch.Tensor, emb_teacher: torch.Tensor) -> torch.Tensor:
    """emb [..., n, d_S] and [..., n, d_T]: match the agents' pairwise cosine-similarity structure."""
    return ((_similarity(emb_student) - _similarity(emb_teacher)) ** 2).mean()


def value(q_tot_student: torch.Tensor, q_tot_teacher: torch.Tensor) -> torch.Tensor:
    return ((q_tot_student - q_tot_teacher) ** 2).mean() / (q_tot_teacher.var() + 1e-6)


def gru_unit_norms(agent) -> dict[str, torch.Tensor]:
    """‖θ_j‖₂ of every hidden unit's parameter group, per layer (fc1 units, rnn units); for one network
    per agent (`nets.<i>`), every agent's units together."""
    if hasattr(agent, "nets"):
        nets = [agent.get_submodule(f"nets.{i}") for i in range(len(list(agent.nets.children())))]
        parts = [gru_unit_norms(net) for net in nets]
        return {k: torch.cat([p[k] for p in parts]) for k in ("fc1", "rnn")}
    H = agent.fc2.weight.shape[1]
    fc1 = torch.sqrt(agent.fc1.weight.pow(2).sum(1) + agent.fc1.bias.pow(2) + 1e-12)
    if isinstance(agent.rnn, torch.nn.GRUCell):
        w_ih = agent.rnn.weight_ih.view(3, H, -1).pow(2).sum((0, 2))
        w_hh = agent.rnn.weight_hh.view(3, H, -1).pow(2).sum((0, 2)) + agent.rnn.weight_hh.pow(2).sum(0)
        b = agent.rnn.bias_ih.view(3, H).pow(2).sum(0) + agent.rnn.bias_hh.view(3, H).pow(2).sum(0)
        rnn = w_ih + w_hh + b
    else:
        rnn = agent.rnn.weight.pow(2).sum(1) + agent.rnn.bias.pow(2)
    rnn = torch.sqrt(rnn + agent.fc2.weight.pow(2).sum(0) + 1e-12)
    return {"fc1": fc1, "rnn": rnn}


def resource(norms: dict[str, torch.Tensor], unit_cost: dict[str, float]) -> torch.Tensor:
    return sum(unit_cost[k] * v.mean() for k, v in norms.items())
