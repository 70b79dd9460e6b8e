"""Each distillation loss term on a constructed case where its value is known."""

import math

import pytest
import torch

from kdcc.marl.qmix import RNNAgent
from kdcc.passes import distill_losses as L


def test_policy_kl_is_zero_for_equal_q_and_known_for_two_actions():
    q = torch.tensor([[1.0, 2.0, 0.5]])
    assert float(L.policy_kl(q, q, tau=2.0)) == pytest.approx(0.0, abs=1e-7)
    # two actions, tau=1: p_T = softmax(0, log 3) = (1/4, 3/4); p_S = (1/2, 1/2)
    qt, qs = torch.tensor([[0.0, math.log(3.0)]]), torch.zeros(1, 2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert float(L.policy_kl(qs, qt, tau=1.0)) == pytest.approx(expected, rel=1e-6)
    # the temperature divides q: scaling q and tau together changes nothing
    assert float(L.policy_kl(qs * 2, qt * 2, tau=2.0)) == pytest.approx(expected, rel=1e-6)


def test_q_regression_is_mse_over_teacher_variance():
    qt = torch.tensor([[0.0, 2.0]])  # unbiased var 2
    assert float(L.q_regression(torch.tensor([[1.0, 1.0]]), qt)) == pytest.approx(1.0 / 2.0, rel=1e-5)


def test_greedy_ce_is_cross_entropy_to_the_teacher_argmax():
    qt = torch.tensor([[0.0, 5.0]])
    qs = torch.tensor([[0.0, 0.0]])
    assert float(L.greedy_ce(qs, qt)) == pytest.approx(math.log(2.0), rel=1e-6)
    # at temperature 0.5, logits (0, 1) -> p(greedy=1) = e^2 / (1 + e^2)
    assert float(L.greedy_ce(torch.tensor([[0.0, 1.0]]), qt, tau=0.5)) == pytest.approx(
        -math.log(math.exp(2) / (1 + math.exp(2))), rel=1e-6)


def test_relation_compares_similarity_structure_across_widths():
    t = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])  # agents 0,2 alike, 1 orthogonal
    s_same = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [5.0, 0.0]]])  # same structure in 2 dims
    assert float(L.relation(s_same, t)) == pytest.approx(0.0, abs=1e-7)
    s_all_alike = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    # similarity matrices differ in the 4 entries pairing agent 1 with 0 and 2: (1-0)^2 each, over 9
    assert float(L.relation(s_all_alike, t)) == pytest.approx(4 / 9, rel=1e-6)


def test_value_is_mse_over_teacher_variance():
    qt = torch.tensor([1.0, 3.0])  # unbiased var = 2
    qs = torch.tensor([2.0, 2.0])  # squared errors 1, 1
    assert float(L.value(qs, qt)) == pytest.approx(1.0 / 2.0, rel=1e-5)


def test_resource_weights_unit_group_norms_by_cost():
    agent = RNNAgent(4, 2, 3)
    with torch.no_grad():
        for p in agent.parameters():
            p.zero_()
        agent.fc1.weight[0, 0] = 3.0  # fc1 unit 0 norm 3, unit 1 norm 0
        agent.fc2.weight[0, 1] = 4.0  # rnn unit 1 norm 4, unit 0 norm 0
    norms = L.gru_unit_norms(agent)
    assert norms["fc1"].tolist() == pytest.approx([3.0, 0.0], abs=1e-5)
    assert norms["rnn"].tolist() == pytest.approx([0.0, 4.0], abs=1e-5)
    assert float(L.resource({k: v.detach() for k, v in norms.items()}, {"fc1": 0.5, "rnn": 0.25})) == pytest.approx(0.5 * 1.5 + 0.25 * 2.0, rel=1e-4)
