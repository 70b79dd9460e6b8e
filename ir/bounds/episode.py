"""Episode certificates: an agent's step with its hidden state in a box, composed step by step over an episode.

`graph.agent_graph` holds the hidden state h fixed, so its certificates are about one
step: a perturbation at step t moves h_{t+1}, and the next step's certificate no longer
speaks about the state the agent is in. Here the input box covers both, u = [x ‖ h]:

    x  the agent's input vector: observation columns within ε·s of the visited ones
       (s: per feature), last-action and agent-id one-hots fixed (radius 0);
    h  a box [h_lo, h_hi] carried from the previous step (a point, zero, at t = 0).

With h moving, W_hh h + b_hh is an affine of the input, and the GRU reads (gate order
r, z, n as in torch.nn.GRUCell; ghr, ghz, ghn the three rows of W_hh h + b_hh):

    a1 = relu(W1 x + b1)
    r  = σ(W_ir a1 + b_ir + ghr)        z = σ(W_iz a1 + b_iz + ghz)
    n  = tanh(W_in a1 + b_in + r ⊙ ghn)                        (a product of two moving terms)
    h' = (1 − z) ⊙ n + z ⊙ h                                   (two more)
    q  = W2 h' + b2

all in graph.py's node kinds ("mul" for the products), so `ibp` and `crown` bound it
unchanged; the box of h' is the next step's hidden box. Since z ∈ [0, 1], h' is
increasing in n and h and linear in z, so over independent boxes of z, n and h it
lies in [min_{z∈{zl,zu}} (1−z) nl + z hl, max_{z∈{zl,zu}} (1−z) nu + z hu] (exact for
the boxes); the h' box is intersected with this, which keeps the recursion from
compounding IBP's loss on the products. A feed-forward agent (rnn: Linear) has no
state: its steps are independent and compose exactly (graph.py's graph, no h box).

Soundness. If at every step every agent's margins q_g − q_a (g: the action it takes
unperturbed, a: its other available actions) are provably > 0 over its box, no
perturbation within the boxes changes an action. The world sees only actions, so by
induction on t it follows the unperturbed trajectory: each agent's observation at t is
the unperturbed one plus the perturbation (inside its x box), its last action the
unperturbed one, and its hidden state lies in the box carried to t (the h' box of
t − 1 contains every hidden state reachable from the boxes before it). So the episode,
its actions and its return are exactly the unperturbed ones. This does not hold where
the world reads something beside the actions that the perturbation could move (dynamics
driven by the observations themselves, or by noise drawn in an order the perturbation
could change), nor for stochastic policies (sampled or ε-greedy actions: the margin of
a sample is not the greedy margin). Bounds are computed in float64 on the real-valued
network: the network's own float32 rounding is outside the certificate (graph.py).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from kdcc.ir.bounds.certify import action_spec
from kdcc.ir.bounds.crown import crown_bounds, margin_bounds_crown
from kdcc.ir.bounds.graph import BoundGraph, agent_graph
from kdcc.ir.bounds.ibp import interval_bounds, margin_bounds_ibp

__all__ = ["StepGraph", "step_graph", "step_bounds", "episode_first_loss"]


class StepGraph(NamedTuple):
    """The graph of one step over [x ‖ h] (at ε = 1: the radii are the box's) and its GRU nodes z, n, h, h'
    (None for a feed-forward agent)."""

    graph: BoundGraph
    gru: tuple[int, int, int, int] | None


def step_graph(network: nn.Module, x0: torch.Tensor, x_radius: torch.Tensor, h_lo: torch.Tensor,
               h_hi: torch.Tensor) -> StepGraph:
    """One step of a QMIX agent network (fc1, rnn: GRUCell or Linear, fc2) over the box x0 ± x_radius [B, d]
    and the hidden box [h_lo, h_hi] [B, H]."""
    fc1, rnn, fc2 = (network.get_submodule(k) for k in ("fc1", "rnn", "fc2"))
    if not isinstance(rnn, nn.GRUCell):
        return StepGraph(agent_graph(network, x0, h_lo, x_radius), None)
    d, H, dtype = x0.shape[1], rnn.hidden_size, x0.dtype
    g = BoundGraph(torch.cat([x0, (h_lo + h_hi) / 2], 1), torch.cat([x_radius, (h_hi - h_lo) / 2], 1))
    zeros = torch.zeros(H, d, dtype=dtype)

    def of_h(weight: torch.Tensor, bias: torch.Tensor) -> int:  # an affine of the hidden columns of u
        return g.affine(0, torch.cat([zeros, weight], 1), bias)

    a1 = g.add("relu", g.affine(0, torch.cat([fc1.weight, fc1.weight.new_zeros(fc1.out_features, H)], 1), fc1.bias))
    b_ih = rnn.bias_ih if rnn.bias_ih is not None else rnn.weight_ih.new_zeros(3 * H)
    b_hh = rnn.bias_hh if rnn.bias_hh is not None else rnn.weight_hh.new_zeros(3 * H)
    (w_r, w_z, w_n), (b_r, b_z, b_n) = rnn.weight_ih.split(H), b_ih.split(H)
    (v_r, v_z, v_n), (c_r, c_z, c_n) = rnn.weight_hh.split(H), b_hh.split(H)
    r = g.add("sigmoid", g.add("add", g.affine(a1, w_r, b_r), of_h(v_r, c_r)))
    z = g.add("sigmoid", g.add("add", g.affine(a1, w_z, b_z), of_h(v_z, c_z)))
    n = g.add("tanh", g.add("add", g.affine(a1, w_n, b_n), g.add("mul", r, of_h(v_n, c_n))))
    h = of_h(torch.eye(H, dtype=dtype), torch.zeros(H, dtype=dtype))
    keep = g.add("scale", z, c=-torch.ones_like(h_lo), d=torch.ones_like(h_lo))
    h_new = g.add("add", g.add("mul", keep, n), g.add("mul", z, h))
    g.affine(h_new, fc2.weight, fc2.bias)
    return StepGraph(g, (z, n, h, h_new))


def _convex_hull(bounds: list, z: int, n: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The box of (1 − z) n + z h over the boxes of z ∈ [0, 1], n and h (module docstring)."""
    (zl, zu), (nl, nu), (hl, hu) = bounds[z], bounds[n], bounds[h]
    lo = torch.minimum((1 - zl) * nl + zl * hl, (1 - zu) * nl + zu * hl)
    hi = torch.maximum((1 - zl) * nu + zl * hu, (1 - zu) * nu + zu * hu)
    return lo, hi


def step_bounds(sg: StepGraph, spec: torch.Tensor, method: str) -> tuple[torch.Tensor, tuple | None]:
    """(lower bounds [B, m] of spec · q, the h' box or None) over the step's box, by "ibp" or "crown"."""
    g = sg.graph
    one = torch.ones(g.x0.shape[0], dtype=g.x0.dtype)
    bounds = (crown_bounds if method == "crown" else interval_bounds)(g, one, g.output - 1)
    hidden = None
    if sg.gru is not None:
        z, n, h, h_new = sg.gru
        (lo, hi), (cl, cu) = bounds[h_new], _convex_hull(bounds, z, n, h)
        lo, hi = torch.maximum(lo, cl), torch.minimum(hi, cu)
        hidden = bounds[h_new] = torch.minimum(lo, hi), torch.maximum(lo, hi)
    lower = (margin_bounds_crown if method == "crown" else margin_bounds_ibp)(g, spec, one, bounds)
    return lower, hidden


@torch.no_grad()
def episode_first_loss(network: nn.Module, x: torch.Tensor, x_radius: torch.Tensor, actions: torch.Tensor,
                       avail: torch.Tensor, steps: torch.Tensor, method: str = "crown") -> torch.Tensor:
    """[B] the first step at which a margin of the action taken is not provably > 0 (`steps[b]`: never), for B
    episodes of one agent network: inputs x [T, B, d] moving by x_radius [T, B, d], actions taken [T, B], the
    actions it has avail [B, A] bool, episode lengths steps [B]. The hidden box starts at zero (the agent's
    initial state) and is carried; a row stops at its first loss."""
    net = copy.deepcopy(network).double().eval()
    T, B, _ = x.shape
    H = int(net.get_submodule("fc1").out_features)
    first = steps.clone().long()
    rows = torch.arange(B)
    h_lo = h_hi = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        live = t < steps[rows]
        rows, h_lo, h_hi = rows[live], h_lo[live], h_hi[live]
        if len(rows) == 0:
            break
        sg = step_graph(net, x[t, rows].double(), x_radius[t, rows].double(), h_lo, h_hi)
        spec, others = action_spec(actions[t, rows], avail[rows])
        lower, hidden = step_bounds(sg, spec, method)
        ok = torch.where(others, lower > 0, True).all(-1)
        first[rows[~ok]] = t
        rows = rows[ok]
        if hidden is not None:
            h_lo, h_hi = hidden[0][ok], hidden[1][ok]
        else:
            h_lo = h_hi = h_lo[ok]
    return first
