"""The bound graph: an agent network, its recurrent state held fixed, as a few op kinds bounds can pass.

A certificate perturbs one thing, the observation; the hidden state h and the last
action (and agent id) are the robot's own and are held fixed. Everything that
depends only on them folds into constants, and QMIX's agent becomes a DAG over
one input x (the agent's input vector, whose observation columns move):

    a1 = relu(W1 x + b1)
    GRU (gate order r, z, n as in torch.nn.GRUCell; g = W_hh h + b_hh is a constant):
      r  = σ(W_ir a1 + b_ir + g_r)        z = σ(W_iz a1 + b_iz + g_z)
      n  = tanh(W_in a1 + b_in + r ⊙ g_n)                 (r ⊙ g_n: an elementwise scale)
      h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)          (one product of two moving terms)
    or feed-forward: h' = relu(W_r a1 + b_r)
    q  = W2 h' + b2

Op kinds (each node holds per-sample tensors with a leading batch dimension B):
  input; affine y = x Wᵀ + b (W shared, b [out] or [B, out]); scale y = c ⊙ x + d (c, d [B, n]);
  add y = x1 + x2; relu, sigmoid, tanh; mul y = x1 ⊙ x2.
The last node is the Q affine, so a margin spec C folds into it (`ibp.margin_bounds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Node", "BoundGraph", "agent_graph", "UNARY"]

UNARY = ("relu", "sigmoid", "tanh")


@dataclass(frozen=True)
class Node:
    kind: str  # input | affine | scale | add | mul | relu | sigmoid | tanh
    srcs: tuple[int, ...] = ()
    params: dict[str, torch.Tensor] = field(default_factory=dict)


class BoundGraph:
    """Nodes in topological order; node 0 is the input box [x0 − r, x0 + r] (x0, r: [B, d])."""

    def __init__(self, x0: torch.Tensor, radius_unit: torch.Tensor):
        self.x0, self.radius_unit = x0, radius_unit
        self.nodes: list[Node] = [Node("input")]

    def add(self, kind: str, *srcs: int, **params: torch.Tensor) -> int:
        self.nodes.append(Node(kind, srcs, params))
        return len(self.nodes) - 1

    def affine(self, src: int, weight: torch.Tensor, bias: torch.Tensor) -> int:
        return self.add("affine", src, weight=weight, bias=bias)

    @property
    def output(self) -> int:
        return len(self.nodes) - 1

    def nonlinear_inputs(self) -> set[int]:
        """The nodes whose bounds a relaxation needs: inputs of relu, sigmoid, tanh and mul."""
        return {s for n in self.nodes if n.kind in UNARY or n.kind == "mul" for s in n.srcs}


def agent_graph(network: nn.Module, x0: torch.Tensor, hidden: torch.Tensor, radius_unit: torch.Tensor) -> BoundGraph:
    """The bound graph of a QMIX agent network (submodules fc1, rnn: GRUCell or Linear, fc2) at the fixed
    hidden states `hidden` [B, H], around inputs x0 [B, d] with per-column radius `radius_unit` [B, d] at ε = 1.

    Works on the eager RNNAgent and on its traced GraphModule (Linear and GRUCell stay submodules);
    differentiable in the weights, so distill's robust term trains through it."""
    fc1, rnn, fc2 = (network.get_submodule(k) for k in ("fc1", "rnn", "fc2"))
    g = BoundGraph(x0, radius_unit)
    a1 = g.add("relu", g.affine(0, fc1.weight, fc1.bias))
    if isinstance(rnn, nn.GRUCell):
        H = rnn.hidden_size
        h = hidden.reshape(-1, H)
        gh = h @ rnn.weight_hh.T + (rnn.bias_hh if rnn.bias_hh is not None else 0.0)
        w_r, w_z, w_n = rnn.weight_ih.split(H)
        b_r, b_z, b_n = (rnn.bias_ih if rnn.bias_ih is not None else rnn.weight_ih.new_zeros(3 * H)).split(H)
        r = g.add("sigmoid", g.affine(a1, w_r, b_r + gh[:, :H]))
        z = g.add("sigmoid", g.affine(a1, w_z, b_z + gh[:, H:2 * H]))
        n = g.add("tanh", g.add("add", g.affine(a1, w_n, b_n), g.add("scale", r, c=gh[:, 2 * H:], d=torch.zeros_like(h))))
        h_minus_n = g.add("scale", n, c=-torch.ones_like(h), d=h)
        h_new = g.add("add", n, g.add("mul", z, h_minus_n))
    else:
        h_new = g.add("relu", g.affine(a1, rnn.weight, rnn.bias))
    g.affine(h_new, fc2.weight, fc2.bias)
    return g
