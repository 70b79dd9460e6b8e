"""Certified ε of an agent step: how far its observation can move before its greedy action could change.

For one step (input vector x0 with the hidden state h and last action fixed), the
action g = argmax q is certified at ε when, over every x with |x_j − x0_j| ≤ ε s_j
(s: the per-feature scale — an observation std or 1, zero on the columns that do
not move: the one-hots, padding), the lower bound of q_g − q_a is > 0 for every other
action a the agent has. The margins are bounded directly (spec rows e_g − e_a),
not q_g and q_a apart. The certified ε is the largest ε so verified, found per step by

  1. bracketing: from ε = 1/64, doubling while verified (up to `eps_max`, reported as
     eps_max: a lower bound) or halving while not (down to `eps_min`, reported as 0);
  2. bisection in the bracket [lo, 2·lo] until hi − lo ≤ rel_tol · hi.

The value returned is always one that was verified (lo), so it is sound even where a
bound is not monotone in ε; with CROWN it is the larger of the CROWN and IBP searches'
(each verified), so CROWN's ε is never below IBP's. Everything runs in float64; the network's own float32
rounding is outside the certificate.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from kdcc.ir.bounds.crown import margin_bounds_crown
from kdcc.ir.bounds.graph import BoundGraph, agent_graph
from kdcc.ir.bounds.ibp import margin_bounds_ibp

__all__ = ["METHODS", "margin_spec", "action_spec", "certified", "certified_radius", "largest_verified",
           "certified_eps"]

METHODS = ("ibp", "crown")
EPS_START, EPS_MIN, EPS_MAX, REL_TOL = 1 / 64, 1e-6, 16.0, 1e-3


def margin_spec(q: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(greedy [B], spec [B, A, A] with rows e_g − e_a, others [B, A]: the rows that must stay > 0)."""
    greedy = torch.argmax(q.masked_fill(~avail, float("-inf")), dim=-1)
    return (greedy, *action_spec(greedy, avail, q.dtype))


def action_spec(action: torch.Tensor, avail: torch.Tensor,
                dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(spec [B, A, A] with rows e_g − e_a, others [B, A]) for a given action g [B]: the one a policy took."""
    A = avail.shape[-1]
    eye = torch.eye(A, dtype=dtype)
    spec = eye[action].unsqueeze(1) - eye.unsqueeze(0)
    others = avail & (torch.arange(A) != action.unsqueeze(-1))
    return spec, others


def certified(g: BoundGraph, spec: torch.Tensor, others: torch.Tensor, eps: torch.Tensor, method: str) -> torch.Tensor:
    """[B] bool: every margin's lower bound over the ε-box is > 0."""
    lower = (margin_bounds_crown if method == "crown" else margin_bounds_ibp)(g, spec, eps)
    return torch.where(others, lower > 0, True).all(-1)


@torch.no_grad()
def certified_radius(g: BoundGraph, spec: torch.Tensor, others: torch.Tensor, method: str = "crown",
                     rel_tol: float = REL_TOL, eps_max: float = EPS_MAX) -> torch.Tensor:
    """[B] certified ε per sample (bracket, then bisect; see the module docstring)."""
    return largest_verified(lambda eps: certified(g, spec, others, eps, method), spec.shape[0], spec.dtype,
                            rel_tol, eps_max)


def largest_verified(verify: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype = torch.float64,
                     rel_tol: float = REL_TOL, eps_max: float = EPS_MAX) -> torch.Tensor:
    """[n] the largest ε at which each of n problems was verified (bracket, then bisect; the module docstring);
    `verify(eps [n]) -> [n] bool` checks all n at once, each at its own ε."""
    zero = torch.zeros(n, dtype=dtype)
    alive = verify(zero)  # a tie (or worse) is certified at no ε
    lo, hi = zero.clone(), torch.full((n,), float("inf"), dtype=dtype)
    eps = torch.full((n,), EPS_START, dtype=dtype)
    searching, up = alive, None
    while bool(searching.any()):
        ok = verify(eps)
        lo, hi = torch.where(searching & ok, eps, lo), torch.where(searching & ~ok, eps, hi)
        up = ok if up is None else up  # verified at the start: double; not: halve
        searching = searching & torch.where(up, ok & (eps < eps_max), ~ok & (eps > EPS_MIN))
        eps = torch.where(up, (eps * 2).clamp(max=eps_max), eps / 2)
    hi = torch.where(torch.isinf(hi), lo, hi)
    active = alive & (lo > 0) & (hi - lo > rel_tol * hi)
    while bool(active.any()):
        mid = (lo + hi) / 2
        ok = verify(mid)
        lo, hi = torch.where(active & ok, mid, lo), torch.where(active & ~ok, mid, hi)
        active = active & (hi - lo > rel_tol * hi)
    return lo


def certified_eps(network: nn.Module, x: torch.Tensor, hidden: torch.Tensor, radius_unit: torch.Tensor,
                  avail: torch.Tensor, method: str = "crown", chunk: int = 64) -> torch.Tensor:
    """Certified ε [B] of a QMIX agent network (fc1, rnn, fc2) at inputs x [B, d] and hidden states [B, H],
    the input moving by ε·radius_unit [B, d]; `avail` [B, A] bool: the actions each sample's agent has."""
    net = copy.deepcopy(network).double().eval()
    out = []
    for i in range(0, len(x), chunk):
        xs, hs, rs = (t[i:i + chunk].double() for t in (x, hidden, radius_unit))
        with torch.no_grad():
            q, _ = net(xs, hs)
        _, spec, others = margin_spec(q, avail[i:i + chunk])
        g = agent_graph(net, xs, hs, rs)
        eps = certified_radius(g, spec, others, "ibp")
        if method == "crown":  # a certificate by either bound is one: keep IBP's where CROWN's search fell short
            eps = torch.maximum(eps, certified_radius(g, spec, others, "crown"))
        out.append(eps)
    return torch.cat(out).float()
