"""prune: GRU consistency, budget met on the cost model, importance from data, unreachable budgets."""

import numpy as np
import pytest
import torch

from kdcc.api import collect
from kdcc.core.errors import KdccError
from kdcc.inputs.dataset import load_dataset
from kdcc.inputs.teacher import load_teacher, save_teacher
from kdcc.ir.printer import team_ops
from kdcc.ir.program import from_modules
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.marl.student import candidate_program, slice_agent
from kdcc.passes import Budget, PassContext, get_pass
from kdcc.targets.cost_model import estimate
from kdcc.targets.profile import load_profile
from kdcc.targets.robot_cost import scoped_cost
from tests.conftest import tiny_spec


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """A teacher of width 16 whose units 8..15 are dead (no input, no effect): pruning them is exact."""
    torch.manual_seed(0)
    spec = tiny_spec(hidden=16)
    agent, mixer = build_agent(spec), build_mixer(spec)
    H = 16
    with torch.no_grad():
        agent.fc1.weight[8:] = 0
        agent.fc1.bias[8:] = 0
        for g in range(3):
            agent.rnn.weight_ih[g * H + 8: g * H + 16] = 0
            agent.rnn.weight_hh[g * H + 8: g * H + 16] = 0
            agent.rnn.bias_ih[g * H + 8: g * H + 16] = 0
            agent.rnn.bias_hh[g * H + 8: g * H + 16] = 0
        agent.rnn.weight_hh[:, 8:] = 0
        agent.rnn.weight_ih[:, 8:] = 0
        agent.fc2.weight[:, 8:] = 0
    d = tmp_path_factory.mktemp("padded")
    save_teacher(d / "t.pt", spec, agent, mixer)
    collect(d / "t.pt", d / "data.npz", episodes=3, seed=0)
    teacher = load_teacher(d / "t.pt")
    return teacher, load_dataset(d / "data.npz")


def _run(teacher, dataset, budget, profile="orin-gpu"):
    ctx = PassContext(teacher=teacher, profile=load_profile(profile), dataset=dataset, budget=budget)
    return get_pass("prune").run(from_modules(teacher.spec, teacher.agent, teacher.mixer), ctx)


def test_slicing_all_units_is_the_identity_and_gates_stay_consistent(padded):
    teacher, _ = padded
    keep = torch.arange(16)
    agent, spec = slice_agent(teacher.agent, teacher.spec, keep, keep)
    x, h = torch.randn(5, spec.input_dim), torch.randn(5, 16)
    assert all(torch.equal(a, b) for a, b in zip(agent(x, h), teacher.agent(x, h)))


def test_pruning_dead_units_keeps_outputs_exactly(padded):
    teacher, dataset = padded
    ops_budget = Budget(scope="team", flops=None, ratio=1.0)
    out = _run(teacher, dataset, ops_budget)  # gpu multiple 32 > 16: stays at 16, nothing pruned
    assert out.spec.agent.hidden_dim == 16
    # budget for width 8 on a cpu device (multiple 4): the 8 dead units are the ones removed
    cpu = load_profile("orin-cpu").device()
    w8 = estimate(team_ops(candidate_program(teacher.spec.with_agent(hidden_dim=8).with_mixer(hypernet_embed=8))), cpu).total
    out = _run(teacher, dataset, Budget(scope="team", flops=w8.flops), profile="orin-cpu")
    assert out.spec.agent.hidden_dim == 8
    decision = out.history[-1]
    assert decision["kept_fc1"] == list(range(8)) and decision["kept_rnn"] == list(range(8))
    x, h = torch.randn(6, teacher.spec.input_dim), torch.zeros(6, 16)
    q_t, h_t = teacher.agent(x, h)
    q_s, h_s = out.agent(x, h[:, :8])
    assert torch.allclose(q_s, q_t, atol=1e-6) and torch.allclose(h_s, h_t[:, :8], atol=1e-6)


def test_pruned_width_meets_budget_and_is_a_device_multiple(padded):
    teacher, dataset = padded
    for ratio in (2.0, 3.0):
        out = _run(teacher, dataset, Budget(scope="team", ratio=ratio), profile="orin-cpu")
        t_flops = sum(c.flops for _, c in team_ops(from_modules(teacher.spec, teacher.agent, teacher.mixer)))
        s_flops = sum(c.flops for _, c in team_ops(out))
        assert s_flops <= t_flops / ratio
        assert out.spec.agent.hidden_dim % 4 == 0
        assert out.history[-1]["estimate"]["flops"] == s_flops


def test_unreachable_budget_names_the_smallest_reachable_cost(padded):
    teacher, dataset = padded
    with pytest.raises(KdccError, match=r"budget unreachable .* smallest reachable student costs flops"):
        _run(teacher, dataset, Budget(scope="team", flops=10.0), profile="orin-cpu")


def test_falls_back_to_a_feedforward_agent_when_no_gru_fits(padded):
    teacher, dataset = padded
    cpu = load_profile("orin-cpu").device()
    gru4 = estimate(team_ops(candidate_program(teacher.spec.with_agent(hidden_dim=4).with_mixer(hypernet_embed=4))),
                    cpu).total
    out = _run(teacher, dataset, Budget(scope="team", flops=gru4.flops - 1), profile="orin-cpu")
    assert out.spec.agent.kind == "ff" and isinstance(out.agent.rnn, torch.nn.Linear)
    assert np.isfinite(out.agent(torch.randn(2, teacher.spec.input_dim), torch.zeros(2, 4))[0].numpy()).all()


def test_a_robot_budget_limits_one_agent_step_and_is_the_default(padded):
    teacher, dataset = padded
    assert Budget().scope == "robot"
    profile = load_profile("orin-cpu")
    device = profile.device()
    robot = lambda w: scoped_cost(candidate_program(teacher.spec.with_agent(hidden_dim=w).with_mixer(  # noqa: E731
        hypernet_embed=w)), profile, "robot", device)[0]
    team = lambda w: scoped_cost(candidate_program(teacher.spec.with_agent(hidden_dim=w).with_mixer(  # noqa: E731
        hypernet_embed=w)), profile, "team", device)[0]
    assert robot(8)["flops"] < team(8)["flops"] / 2  # one of three agents, no mixer
    out = _run(teacher, dataset, Budget(flops=robot(8)["flops"]), profile="orin-cpu")
    assert out.spec.agent.hidden_dim == 8  # the widest a robot's step fits in
    assert out.history[-1]["scope"] == "robot" and out.history[-1]["estimate"]["flops"] <= robot(8)["flops"]
    assert robot(12)["flops"] > robot(8)["flops"]
    with pytest.raises(KdccError, match="unreachable"):  # as a team budget, the same number fits no student
        _run(teacher, dataset, Budget(flops=robot(8)["flops"], scope="team"), profile="orin-cpu")
