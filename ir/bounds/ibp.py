"""Interval bound propagation (IBP): a box in, a box out, node by node.

In centre/radius form an affine map is exact on a box: W x + b over |x − c| ≤ r
is the box W c + b ± |W| r. The elementwise scale c ⊙ x + d likewise (radius |c| r).
A monotone function (relu, σ, tanh) maps [l, u] onto [f(l), f(u)]. A product of two
intervals lies between the least and greatest of the four corner products. Each step
is sound, so the output box contains every output the input box can produce; it
loosens where one input drives several paths (their dependence is forgotten), which
CROWN (`crown.py`) keeps track of.

A margin q_g − q_a is bounded directly: with the spec C (rows e_g − e_a) folded into
the last affine, C q = (C W2) h' + C b2 is one affine of h', so the corner cases of
q_g and q_a that cannot happen together are never added.
"""

from __future__ import annotations

import torch

from kdcc.ir.bounds.graph import BoundGraph

__all__ = ["interval_bounds", "interval_step", "margin_bounds_ibp"]

_MONOTONE = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def interval_bounds(g: BoundGraph, eps: torch.Tensor, upto: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(lower, upper)] of every node up to `upto` (default: all) for the box x0 ± eps·radius_unit (eps [B])."""
    r = eps.reshape(-1, 1) * g.radius_unit
    out = [(g.x0 - r, g.x0 + r)]
    last = len(g.nodes) - 1 if upto is None else upto
    for node in g.nodes[1:last + 1]:
        out.append(interval_step(node, out))
    return out


def interval_step(node, out):
    k, p = node.kind, node.params
    if k == "affine":
        lo, hi = out[node.srcs[0]]
        c, r = (hi + lo) / 2, (hi - lo) / 2
        mid, rad = c @ p["weight"].T + p["bias"], r @ p["weight"].abs().T
        return mid - rad, mid + rad
    if k == "scale":
        lo, hi = out[node.srcs[0]]
        a, b = p["c"] * lo + p["d"], p["c"] * hi + p["d"]
        return torch.minimum(a, b), torch.maximum(a, b)
    if k == "add":
        (l1, u1), (l2, u2) = out[node.srcs[0]], out[node.srcs[1]]
        return l1 + l2, u1 + u2
    if k == "mul":
        (l1, u1), (l2, u2) = out[node.srcs[0]], out[node.srcs[1]]
        corners = torch.stack([l1 * l2, l1 * u2, u1 * l2, u1 * u2])
        return corners.min(0).values, corners.max(0).values
    f = _MONOTONE[k]
    lo, hi = out[node.srcs[0]]
    return f(lo), f(hi)


def margin_bounds_ibp(g: BoundGraph, spec: torch.Tensor, eps: torch.Tensor,
                      bounds: list | None = None) -> torch.Tensor:
    """Lower bounds [B, m] of spec · q (spec [B, m, A]) over the box, the spec folded into the Q affine."""
    bounds = interval_bounds(g, eps, g.output - 1) if bounds is None else bounds
    last = g.nodes[g.output]
    lo, hi = bounds[last.srcs[0]]
    w = spec @ last.params["weight"]  # [B, m, H]
    b = spec @ last.params["bias"].unsqueeze(-1)  # bias [A] or [B, A]
    c, r = ((hi + lo) / 2).unsqueeze(-1), ((hi - lo) / 2).unsqueeze(-1)
    return ((w @ c) + b - (w.abs() @ r)).squeeze(-1)
