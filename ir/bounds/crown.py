"""CROWN: linear bounds by back-substitution, tighter than intervals where paths share an input.

To lower-bound Λ·y_k (Λ [B, m, n_k]) over the input box, walk the graph backwards
from node k, keeping Λ·y_k ≥ Σ_j Λ_j·y_j + const for the nodes j not yet passed:

  affine  y = W x + b      Λ_x += Λ W,  const += Λ b                (exact)
  scale   y = c ⊙ x + d    Λ_x += Λ ⊙ c, const += Λ·d                (exact)
  add     y = x1 + x2      Λ_x1 += Λ, Λ_x2 += Λ                      (exact)
  unary   αl x + βl ≤ f(x) ≤ αu x + βu on the input's [l, u]:
          Λ_x += Λ⁺αl + Λ⁻αu,  const += Λ⁺βl + Λ⁻βu                 (Λ⁺ = max(Λ, 0), Λ⁻ = min(Λ, 0))
  mul     McCormick planes, from (x − xl)(y − yl) ≥ 0 and (x − xl)(y − yu) ≤ 0:
          yl x + xl y − xl yl ≤ x y ≤ yu x + xl y − xl yu
  input   min over |x − x0| ≤ ε r of Λ x is Λ x0 − |Λ| ε r (Hölder, exact).

The relaxations (all sound on [l, u]):
  relu     l ≥ 0: identity; u ≤ 0: zero; else upper the chord u(x − l)/(u − l),
           lower αx with α = 1 if u > −l else 0 (the smaller-area choice).
  σ, tanh  both convex for x ≤ 0 and concave for x ≥ 0. Convex piece (u ≤ 0): the chord
           is above, the tangent at the midpoint below; concave (l ≥ 0): the reverse. Across
           0: f' is least at an end of [l, u] (it peaks at 0), so with k = min(f'(l), f'(u))
           f(x) ≥ f(l) + k(x − l) and f(x) ≤ f(u) − k(u − x) on [l, u].
Intermediate bounds (the [l, u] of every node a relaxation reads) come from forward
linear bounds (`linear.py`: the same relaxations pushed forward, n·d per node instead
of the n² a back-substitution from every node would cost), each intersected with its
interval bound. A margin's bound is the larger of the back-substitution's and IBP's on
those bounds (both sound), so CROWN never certifies less than IBP given the same box.
"""

from __future__ import annotations

import torch

from kdcc.ir.bounds.graph import BoundGraph
from kdcc.ir.bounds.ibp import interval_step, margin_bounds_ibp
from kdcc.ir.bounds.linear import concretise, forward_linear_step, input_linear

__all__ = ["crown_bounds", "margin_bounds_crown", "relaxation"]

_F = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}


def _fprime(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "sigmoid":
        s = torch.sigmoid(x)
        return s * (1 - s)
    return 1 - torch.tanh(x) ** 2


def relaxation(kind: str, lo: torch.Tensor, hi: torch.Tensor):
    """(αl, βl, αu, βu): αl x + βl ≤ f(x) ≤ αu x + βu for x in [lo, hi], elementwise."""
    if kind == "relu":
        width = (hi - lo).clamp_min(1e-30)
        on, off = lo >= 0, hi <= 0
        up_slope = torch.where(on, 1.0, torch.where(off, 0.0, hi / width))
        up_icpt = torch.where(on | off, 0.0, -lo * hi / width)
        low_slope = torch.where(on, 1.0, torch.where(off, 0.0, (hi > -lo).to(lo.dtype)))
        return low_slope, torch.zeros_like(lo), up_slope, up_icpt
    f = _F[kind]
    fl, fu = f(lo), f(hi)
    chord = (fu - fl) / (hi - lo).clamp_min(1e-30)
    chord_icpt = fl - chord * lo
    mid = (lo + hi) / 2
    tan = _fprime(kind, mid)
    tan_icpt = f(mid) - tan * mid
    k = torch.minimum(_fprime(kind, lo), _fprime(kind, hi))
    convex, concave = hi <= 0, lo >= 0
    low_slope = torch.where(convex, tan, torch.where(concave, chord, k))
    low_icpt = torch.where(convex, tan_icpt, torch.where(concave, chord_icpt, fl - k * lo))
    up_slope = torch.where(convex, chord, torch.where(concave, tan, k))
    up_icpt = torch.where(convex, chord_icpt, torch.where(concave, tan_icpt, fu - k * hi))
    flat = (hi - lo) <= 1e-12 * (1 + hi.abs())  # a point (or rounding's inversion): f(x) in [f(l), f(u)]
    zero = torch.zeros_like(lo)
    return (torch.where(flat, zero, low_slope), torch.where(flat, torch.minimum(fl, fu), low_icpt),
            torch.where(flat, zero, up_slope), torch.where(flat, torch.maximum(fl, fu), up_icpt))


def _backward(g: BoundGraph, start: int, lam: torch.Tensor, bounds: list, eps: torch.Tensor) -> torch.Tensor:
    """Lower bound [B, m] of lam · y_start over the input box (lam [B, m, n_start])."""
    pending = {start: lam}
    const = lam.new_zeros(lam.shape[:2])

    def push(j, coeff):
        pending[j] = pending[j] + coeff if j in pending else coeff

    for k in range(start, -1, -1):
        L = pending.pop(k, None)
        if L is None:
            continue
        node, p = g.nodes[k], g.nodes[k].params
        if node.kind == "input":
            r = (eps.reshape(-1, 1) * g.radius_unit).unsqueeze(-1)
            return const + (L @ g.x0.unsqueeze(-1) - L.abs() @ r).squeeze(-1)
        if node.kind == "affine":
            push(node.srcs[0], L @ p["weight"])
            const = const + (L @ p["bias"].unsqueeze(-1)).squeeze(-1)
        elif node.kind == "scale":
            push(node.srcs[0], L * p["c"].unsqueeze(1))
            const = const + (L * p["d"].unsqueeze(1)).sum(-1)
        elif node.kind == "add":
            push(node.srcs[0], L)
            push(node.srcs[1], L)
        else:
            pos, neg = L.clamp(min=0), L.clamp(max=0)
            if node.kind == "mul":
                (xl, _), (yl, yu) = bounds[node.srcs[0]], bounds[node.srcs[1]]
                xl, yl, yu = xl.unsqueeze(1), yl.unsqueeze(1), yu.unsqueeze(1)
                push(node.srcs[0], pos * yl + neg * yu)
                push(node.srcs[1], L * xl)
                const = const - (pos * xl * yl + neg * xl * yu).sum(-1)
            else:
                al, bl, au, bu = (t.unsqueeze(1) for t in relaxation(node.kind, *bounds[node.srcs[0]]))
                push(node.srcs[0], pos * al + neg * au)
                const = const + (pos * bl + neg * bu).sum(-1)
    raise AssertionError("the back-substitution never reached the input node")


def crown_bounds(g: BoundGraph, eps: torch.Tensor, upto: int | None = None) -> list:
    """[(lower, upper)] of every node up to `upto`: interval bounds intersected with forward linear bounds."""
    r = eps.reshape(-1, 1) * g.radius_unit
    bounds, lins = [(g.x0 - r, g.x0 + r)], [input_linear(g)]
    last = len(g.nodes) - 1 if upto is None else upto
    for node in g.nodes[1:last + 1]:
        lo, hi = interval_step(node, bounds)
        lin = forward_linear_step(node, lins, bounds, relaxation)
        flo, fhi = concretise(lin, g, eps)
        lo, hi = torch.maximum(lo, flo), torch.minimum(hi, fhi)
        bounds.append((torch.minimum(lo, hi), torch.maximum(lo, hi)))  # rounding may cross them by an ulp
        lins.append(lin)
    return bounds


def margin_bounds_crown(g: BoundGraph, spec: torch.Tensor, eps: torch.Tensor,
                        bounds: list | None = None) -> torch.Tensor:
    """Lower bounds [B, m] of spec · q over the box: max of CROWN back-substitution and IBP (both sound);
    `bounds`: the nodes' bounds up to the Q affine's input where the caller has them (`crown_bounds`)."""
    bounds = crown_bounds(g, eps, g.output - 1) if bounds is None else bounds
    return torch.maximum(_backward(g, g.output, spec, bounds, eps), margin_bounds_ibp(g, spec, eps, bounds))
