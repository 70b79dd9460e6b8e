"""Heterogeneous agents: one network per agent, exact split, per-agent widths from the cost model."""

import numpy as np
import pytest
import torch

from kdcc.api import collect
from kdcc.inputs.dataset import load_dataset
from kdcc.inputs.teacher import load_teacher
from kdcc.ir.printer import team_ops
from kdcc.ir.program import from_modules
from kdcc.ir.spec import MarlSpec
from kdcc.marl.qmix import build_inputs
from kdcc.marl.student import split_agent
from kdcc.passes import Budget, PassContext, get_pass
from kdcc.passes.prune_split import allocate_widths, importance_kept
from kdcc.targets.cost_model import estimate
from kdcc.targets.profile import load_profile
from tests.conftest import make_speaker_listener_teacher, speaker_listener_spec


@pytest.fixture(scope="module")
def hetero(tmp_path_factory):
    d = tmp_path_factory.mktemp("sl")
    path = make_speaker_listener_teacher(d / "sl.pt", hidden=32)
    collect(path, d / "data.npz", episodes=6, seed=1)
    teacher = load_teacher(path)
    return teacher, load_dataset(d / "data.npz", teacher.spec)


def test_spec_round_trips_per_agent_sizes_and_widths():
    spec = speaker_listener_spec().with_agent(widths=(8, 32), hidden_dim=32)
    assert spec.heterogeneous and spec.agent.split
    assert spec.agent_input_cols(0) == [0, 1, 2, 11, 12, 13]  # own obs, own 3 actions; no padding, no id
    assert MarlSpec.from_dict(spec.to_dict()) == spec
    bad = spec.to_dict()
    bad["agent"]["widths"] = [8]
    with pytest.raises(ValueError, match="agent.widths must be 2 positive integers"):
        MarlSpec.from_dict(bad)


def test_split_with_every_unit_kept_is_exact(hetero):
    teacher, _ = hetero
    spec = teacher.spec
    all_units = torch.arange(spec.agent.hidden_dim)
    split, split_spec = split_agent(teacher.agent, spec, [(all_units, all_units)] * 2)
    assert [net.fc1.in_features for net in split.nets] == [6, 16]  # speaker 3+3, listener 11+5
    assert [net.fc2.out_features for net in split.nets] == [3, 5]
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(7, 2, 11, generator=g)
    obs[:, 0, 3:] = 0  # the speaker's padding is always zero
    last = torch.stack([torch.randint(-1, 3, (7,), generator=g), torch.randint(-1, 5, (7,), generator=g)], 1)
    x = build_inputs(spec, obs, last).reshape(14, -1)
    h = torch.randn(14, spec.agent.hidden_dim, generator=g)
    with torch.no_grad():
        q_shared, h_shared = teacher.agent(x, h)
        q_split, h_split = split(x, h)
    avail = torch.tensor(spec.avail()).repeat(7, 1)
    assert torch.allclose(q_shared * avail, q_split, atol=1e-5)
    assert torch.equal(q_split[avail == 0], torch.zeros(int((avail == 0).sum())))
    assert torch.allclose(h_shared, h_split, atol=1e-5)


def test_allocation_grows_the_agent_whose_units_matter_most_per_cost():
    flat = (torch.ones(32), torch.ones(32))  # every unit as important as the next
    peaked = (torch.cat([torch.full((4,), 100.0), torch.ones(28)]), torch.cat([torch.full((4,), 100.0), torch.ones(28)]))
    cost = lambda w: {"flops": float(w[0] + w[1])}  # noqa: E731 - each unit costs the same
    widths, c = allocate_widths([peaked, flat], [4, 8, 16, 24, 32], cost, {"flops": 39})
    assert widths == (4, 32) and c == {"flops": 36.0}  # peaked keeps 93% at 4 units: flat gets the budget
    assert importance_kept(peaked, 4) == pytest.approx(800 / 856)
    assert allocate_widths([peaked, flat], [4, 8], cost, {"flops": 7}) is None


def test_prune_gives_each_agent_its_own_width_within_the_budget(hetero):
    teacher, data = hetero
    profile = load_profile("orin")
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    limit = sum(c.flops for _, c in team_ops(program)) / 3
    ctx = PassContext(teacher=teacher, profile=profile, dataset=data, budget=Budget(scope="team", flops=limit))
    out = get_pass("prune").run(program, ctx)
    spec, d = out.spec, out.history[-1]
    assert spec.agent.split and len(spec.agent.widths) == 2
    assert d["widths"] == list(spec.agent.widths) and spec.agent.hidden_dim == max(spec.agent.widths)
    assert all(w % d["multiple"] == 0 or w == 32 for w in spec.agent.widths)
    device = next(dev for dev in profile.devices if dev.name == d["device"])
    assert estimate(team_ops(out), device).total.flops <= limit
    assert d["estimate"]["flops"] == estimate(team_ops(out), device).total.flops
    assert all(0 < k <= 1 for k in d["importance_kept"])
    # the students's padded outputs keep the interface: q [n, 5] with zeros where an agent has no action
    a, q, h, q_tot = out.team_module()(torch.zeros(2, 11), torch.tensor([-1, -1]), torch.zeros(2, spec.agent.hidden_dim),
                                       torch.zeros(14))
    assert q.shape == (2, 5) and h.shape == (2, spec.agent.hidden_dim) and int(a[0]) < 3
    assert np.all(q[0, 3:].numpy() == 0)


def test_distill_trains_every_agents_network(hetero):
    teacher, data = hetero
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    ctx = PassContext(teacher=teacher, profile=load_profile("host"), dataset=data, budget=Budget(scope="team", ratio=3.0),
                      options={"distill.steps": 20, "distill.dagger_every": 0})
    pruned = get_pass("prune").run(program, ctx)
    student = get_pass("distill").run(pruned, ctx)
    for i in range(2):
        before = pruned.agent.get_submodule(f"nets.{i}.fc1").weight
        after = student.agent.get_submodule(f"nets.{i}.fc1").weight
        assert not torch.equal(before, after)
    assert student.spec == pruned.spec


def test_a_latency_budget_only_a_shared_network_meets_falls_back_to_it(hetero):
    teacher, data = hetero
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    import dataclasses

    orin = load_profile("orin")  # priced as the Relax VM (no VM-free overheads): its kernel overheads decide here
    profile = dataclasses.replace(orin, devices=tuple(dataclasses.replace(d, direct_call_overhead_us=None)
                                                      for d in orin.devices))
    # on the Orin CPU profile two networks cost ~3.5 µs more in VM kernel overheads than one shared network
    ctx = PassContext(teacher=teacher, profile=profile, dataset=data, budget=Budget(scope="team", latency_us=12.0))
    out = get_pass("prune").run(program, ctx)
    assert not out.spec.agent.split and "width" in out.history[-1]
    assert out.history[-1]["estimate"]["latency_us"] <= 12.0
    forced = get_pass("prune").run(program, PassContext(teacher=teacher, profile=profile, dataset=data,
                                                        budget=Budget(scope="team", ratio=3.0), options={"prune.split": 0}))
    assert not forced.spec.agent.split


def test_a_width_gives_each_agent_its_own_network_of_it_and_the_ladder_costs_them_so(hetero):
    """`prune.width` (a --keep rung) on a heterogeneous team: one network of that width per agent, costed as such."""
    from dataclasses import replace

    from kdcc.passes.prune import ladders

    teacher, data = hetero
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    ctx = PassContext(teacher=teacher, profile=load_profile("host"), dataset=data, budget=Budget(ratio=1.0))
    out = get_pass("prune").run(program, replace(ctx, options={"prune.width": 16}))
    assert out.spec.agent.split and out.spec.agent.widths == (16, 16) and out.history[-1]["widths"] == [16, 16]
    own, shared = ladders(program, ctx), ladders(program, replace(ctx, options={"prune.split": 0}))
    assert [(k, w) for k, w, _ in own] == [(k, w) for k, w, _ in shared] == [("rnn", 16), ("rnn", 32), ("ff", 16),
                                                                               ("ff", 32)]
    assert own[0][2]["flops"] == out.history[-1]["estimate"]["flops"]
    assert all(o[2]["flops"] < s[2]["flops"] for o, s in zip(own, shared))  # own inputs only: fewer FLOPs
