"""ir/bounds: IBP and CROWN contain every sampled output; the certified ε is exact on a linear agent and
never beaten by random or PGD perturbations on the GRU and feed-forward agents; CROWN's ε ≥ IBP's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdcc.ir.bounds import (
    BoundGraph,
    agent_graph,
    certified_eps,
    certified_radius,
    crown_bounds,
    interval_bounds,
    margin_bounds_crown,
    margin_bounds_ibp,
    margin_spec,
)
from kdcc.marl.qmix import RNNAgent

D, OBS, A, B = 14, 10, 5, 32


def _agent(hidden: int, rnn: bool, seed: int = 0):
    torch.manual_seed(seed)
    net = RNNAgent(D, hidden, A, use_rnn=rnn).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.randn(B, D, dtype=torch.float64)
    x[:, OBS:] = 0.0
    x[torch.arange(B), OBS + torch.arange(B) % (D - OBS)] = 1.0  # a one-hot part that does not move
    h = torch.randn(B, hidden, dtype=torch.float64) * 0.5
    radius = torch.zeros(B, D, dtype=torch.float64)
    radius[:, :OBS] = torch.rand(OBS, dtype=torch.float64) + 0.5  # a per-feature scale
    return net, x, h, radius


def _min_margin(net, x, h, greedy):
    q = net(x, h)[0]
    gap = q.gather(1, greedy[:, None]) - q
    return gap.masked_fill(F.one_hot(greedy, A).bool(), float("inf")).min(-1).values


@pytest.mark.parametrize("hidden,rnn", [(16, True), (24, False)])
def test_bounds_contain_sampled_outputs_of_every_node(hidden, rnn):
    net, x, h, radius = _agent(hidden, rnn)
    eps = torch.full((B,), 0.2, dtype=torch.float64)
    g = agent_graph(net, x, h, radius)
    ibp, crown = interval_bounds(g, eps), crown_bounds(g, eps)
    samples = x + (torch.rand(500, B, D, dtype=torch.float64) * 2 - 1).sign() * eps[:, None] * radius
    samples[::2] = x + (torch.rand(250, B, D, dtype=torch.float64) * 2 - 1) * eps[:, None] * radius
    q = torch.stack([net(s, h)[0] for s in samples])
    for lo, hi in (ibp[-1], crown[-1]):
        assert bool(((q >= lo - 1e-9) & (q <= hi + 1e-9)).all())
    width = lambda b: float((b[-1][1] - b[-1][0]).mean())  # noqa: E731
    assert width(crown) < width(ibp)  # the linear bounds are tighter on the GRU's shared paths


def test_linear_agent_is_certified_exactly():
    """q = W x + b: the margin q_g − q_a = (w_g − w_a)·x + (b_g − b_a) is least on the box at
    x0 − ε s ⊙ sign(w_g − w_a), so ε* = min_a margin_a(x0) / ‖(w_g − w_a) ⊙ s‖₁ — both bounds are exact."""
    torch.manual_seed(3)
    W, b = torch.randn(A, D, dtype=torch.float64), torch.randn(A, dtype=torch.float64)
    x = torch.randn(B, D, dtype=torch.float64)
    s = torch.rand(B, D, dtype=torch.float64) + 0.1
    g = BoundGraph(x, s)
    g.affine(0, W, b)
    q = x @ W.T + b
    greedy, spec, others = margin_spec(q, torch.ones(B, A, dtype=torch.bool))
    diff = W[greedy].unsqueeze(1) - W.unsqueeze(0)  # [B, A, D]
    exact = ((q.gather(1, greedy[:, None]) - q) / (diff.abs() * s.unsqueeze(1)).sum(-1)).masked_fill(~others,
                                                                                               float("inf"))
    exact = exact.min(-1).values
    for method in ("ibp", "crown"):
        eps = certified_radius(g, spec, others, method)
        assert bool((eps <= exact * (1 + 1e-9)).all())  # sound
        assert bool((eps >= exact * (1 - 2e-3)).all())  # and exact within the bisection's 0.1%
    lower = margin_bounds_ibp(g, spec, exact)
    assert torch.allclose(lower, margin_bounds_crown(g, spec, exact), atol=1e-9)
    assert float(lower.masked_fill(~others, float("inf")).min(-1).values.abs().max()) < 1e-9  # 0 exactly at ε*


@pytest.mark.parametrize("hidden,rnn", [(16, True), (24, False)])
def test_no_perturbation_inside_the_certified_eps_changes_the_action(hidden, rnn):
    net, x, h, radius = _agent(hidden, rnn, seed=1)
    avail = torch.ones(B, A, dtype=torch.bool)
    eps_ibp = certified_eps(net, x, h, radius, avail, "ibp").double()
    eps = certified_eps(net, x, h, radius, avail, "crown").double()
    assert bool((eps >= eps_ibp).all()) and float(eps.median()) > float(eps_ibp.median())
    assert float(eps.min()) > 0
    greedy = net(x, h)[0].argmax(-1)
    box = eps[:, None] * radius
    worst = torch.full((B,), float("inf"), dtype=torch.float64)
    for i in range(400):  # random points and corners of the box
        u = torch.rand(B, D, dtype=torch.float64) * 2 - 1
        worst = torch.minimum(worst, _min_margin(net, x + (u.sign() if i % 2 else u) * box, h, greedy))
    delta = torch.zeros(B, D, dtype=torch.float64, requires_grad=True)
    for _ in range(60):  # PGD on the margin, projected onto the box
        _min_margin(net, x + delta * box, h, greedy).sum().backward()
        with torch.no_grad():
            delta -= 0.1 * delta.grad.sign()
            delta.clamp_(-1, 1)
            delta.grad.zero_()
    with torch.no_grad():
        worst = torch.minimum(worst, _min_margin(net, x + delta * box, h, greedy))
        assert float(worst.min()) > 0  # the action never changed
        beyond = _min_margin(net, x + delta.sign() * box * 4, h, greedy)  # well outside, PGD's direction
    assert float(beyond.min()) < 0  # the certificate is not vacuous: some step flips within 4× its ε


def test_a_tie_is_certified_at_zero():
    net, x, h, radius = _agent(8, True)
    with torch.no_grad():
        net.fc2.weight[1] = net.fc2.weight[0]
        net.fc2.bias[1] = net.fc2.bias[0] + 1e3  # action 1 always wins: certify it ...
        net.fc2.bias[0] = net.fc2.bias[1]  # ... now ties with action 0 on every input
    eps = certified_eps(net, x, h, radius, torch.ones(B, A, dtype=torch.bool), "crown")
    assert bool((eps == 0).all())
