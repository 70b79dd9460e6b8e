"""Forward linear bounds: every node bounded by two linear functions of the input, for intermediate bounds.

Each node y carries Al x + cl ≤ y ≤ Au x + cu (Al, Au [B, n, d]), pushed forward with
the same relaxations as the back-substitution (`crown.relaxation`, McCormick for products):

  affine  W = W⁺ + W⁻:  Al' = W⁺Al + W⁻Au,  cl' = W⁺cl + W⁻cu + b   (upper: swap l and u)
  scale   as affine with the diagonal c
  unary   αl x + βl ≤ f(x):  Al' = αl⁺Al + αl⁻Au, cl' = αl⁺cl + αl⁻cu + βl  (upper alike with αu, βu)
  mul     yl·x + xl·y − xl·yl ≤ x·y ≤ yu·x + xl·y − xl·yu, each product of a constant and a
          linear bound taken by the constant's sign

and concretised over the box as A x0 + c ∓ |A| ε r. Its cost per node is n·d per sample
(d, the input size, is tens) where back-substituting from every intermediate node would
cost n² per node (n is up to 256), which is what makes per-step bisection affordable;
the margin itself is then bounded by back-substitution from the output (`crown.py`).
"""

from __future__ import annotations

import torch

from kdcc.ir.bounds.graph import BoundGraph

__all__ = ["forward_linear_step", "concretise", "input_linear"]


def input_linear(g: BoundGraph):
    B, d = g.x0.shape
    eye = torch.eye(d, dtype=g.x0.dtype).expand(B, d, d)
    zero = g.x0.new_zeros(B, d)
    return eye, zero, eye, zero


def concretise(lin, g: BoundGraph, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    al, cl, au, cu = lin
    x0 = g.x0.unsqueeze(-1)
    r = (eps.reshape(-1, 1) * g.radius_unit).unsqueeze(-1)
    return (al @ x0 - al.abs() @ r).squeeze(-1) + cl, (au @ x0 + au.abs() @ r).squeeze(-1) + cu


def _mix(pos_coeff, neg_coeff, a_pos, c_pos, a_neg, c_neg):
    """pos_coeff ⊙ (a_pos x + c_pos) + neg_coeff ⊙ (a_neg x + c_neg), coefficients [B, n]."""
    return (pos_coeff.unsqueeze(-1) * a_pos + neg_coeff.unsqueeze(-1) * a_neg,
            pos_coeff * c_pos + neg_coeff * c_neg)


def _times(k, lin):
    """Bounds of k ⊙ y for a constant k [B, n]: (lower A, lower c, upper A, upper c)."""
    al, cl, au, cu = lin
    kp, kn = k.clamp(min=0), k.clamp(max=0)
    return (*_mix(kp, kn, al, cl, au, cu), *_mix(kp, kn, au, cu, al, cl))


def forward_linear_step(node, lins: list, bounds: list, relaxation):
    """The linear bounds of `node` from those of its inputs (`lins`) and their concrete bounds (`bounds`)."""
    k, p = node.kind, node.params
    if k == "affine":
        al, cl, au, cu = lins[node.srcs[0]]
        if node.srcs[0] == 0:  # of the input itself (A = I, c = 0): W and b, with no product (the same numbers)
            a = p["weight"].expand(al.shape[0], -1, -1)
            c = p["bias"].expand(al.shape[0], -1)
            return a, c, a, c
        wp, wn = p["weight"].clamp(min=0), p["weight"].clamp(max=0)
        return (wp @ al + wn @ au, cl @ wp.T + cu @ wn.T + p["bias"],
                wp @ au + wn @ al, cu @ wp.T + cl @ wn.T + p["bias"])
    if k == "scale":
        al, cl, au, cu = _times(p["c"], lins[node.srcs[0]])
        return al, cl + p["d"], au, cu + p["d"]
    if k == "add":
        a, b = lins[node.srcs[0]], lins[node.srcs[1]]
        return tuple(s + t for s, t in zip(a, b))
    if k == "mul":
        (xl, _), (yl, yu) = bounds[node.srcs[0]], bounds[node.srcs[1]]
        x, y = lins[node.srcs[0]], lins[node.srcs[1]]
        yl_x, xl_y, yu_x = _times(yl, x), _times(xl, y), _times(yu, x)
        return (yl_x[0] + xl_y[0], yl_x[1] + xl_y[1] - xl * yl,
                yu_x[2] + xl_y[2], yu_x[3] + xl_y[3] - xl * yu)
    sl, il, su, iu = relaxation(k, *bounds[node.srcs[0]])
    lo_a, lo_c, _, _ = _times(sl, lins[node.srcs[0]])
    _, _, up_a, up_c = _times(su, lins[node.srcs[0]])
    return lo_a, lo_c + il, up_a, up_c + iu
