"""approximate-mixer (monotonic fit of Q_tot) and distill (fidelity restored after pruning)."""

from dataclasses import replace

import pytest
import torch

from kdcc.api import collect
from kdcc.core.errors import KdccError
from kdcc.inputs.dataset import load_dataset
from kdcc.inputs.teacher import load_teacher
from kdcc.ir.program import from_modules
from kdcc.marl.probe import fidelity, make_probe, replay
from kdcc.passes import Budget, PassContext, get_pass
from kdcc.targets.profile import load_profile
from tests.conftest import make_tiny_teacher


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("ad")
    path = make_tiny_teacher(d / "t.pt", seed=2, hidden=32, hypernet_embed=32)
    collect(path, d / "data.npz", episodes=12, seed=3)
    teacher = load_teacher(path)
    ctx = PassContext(teacher=teacher, profile=load_profile("orin-cpu"), dataset=load_dataset(d / "data.npz"),
                      budget=Budget(ratio=2.0), options={"approximate-mixer.steps": 300, "distill.steps": 150,
                                                         "distill.dagger_every": 75, "distill.dagger_episodes": 2})
    return teacher, ctx, from_modules(teacher.spec, teacher.agent, teacher.mixer)


def test_mixer_approximation_meets_its_goal_cheapest_first_and_is_monotonic(setup):
    teacher, ctx, program = setup
    # 12 episodes (60 held-out states) of a random teacher: a goal of 0.4 is met by the cheapest (static) mixer
    out = get_pass("approximate-mixer").run(program, replace(ctx, options={**ctx.options,
                                                                          "approximate-mixer.goal": 0.4}))
    assert out.spec.mixer.kind in ("static", "hyper") and program.spec.mixer.kind == "qmix"
    d = out.history[-1]
    assert d["applied"] and d["goal_met"] and d["relative_err"] <= d["goal"] == 0.4
    assert d["heldout_mean_abs_err"] <= 0.4 * d["heldout_target_std"]
    tried = d["candidates"]  # cheapest first, stopped at the first that meets the goal
    assert [c["latency_us"] for c in tried] == sorted(c["latency_us"] for c in tried)
    assert all(c["relative_err"] > 0.4 for c in tried[:-1]) and tried[-1]["relative_err"] <= 0.4
    qs, s = torch.randn(64, 3), torch.randn(64, 54)
    base = out.mixer(qs, s)
    for i in range(3):
        bumped = qs.clone()
        bumped[:, i] += torch.rand(64) + 0.01
        assert bool((out.mixer(bumped, s) >= base - 1e-6).all())
    again = get_pass("approximate-mixer").run(out, ctx)  # negative case: already approximated
    assert again.history[-1]["applied"] is False and again.mixer is not None


def test_mixer_fallback_is_the_most_faithful_candidate(setup):
    """An unreachable goal: every candidate is tried, cheapest first, each but the last given up halfway, and
    the smallest held-out error is kept."""
    _, ctx, program = setup
    d = get_pass("approximate-mixer").run(program, replace(ctx, options={
        "approximate-mixer.steps": 40, "approximate-mixer.goal": 0.0})).history[-1]
    tried = d["candidates"]
    assert not d["goal_met"] and len(tried) == 6
    assert [c["latency_us"] for c in tried] == sorted(c["latency_us"] for c in tried)
    assert [c["steps"] for c in tried] == [20] * 5 + [40]
    assert d["relative_err"] == min(c["relative_err"] for c in tried)
    with pytest.raises(KdccError, match="approximate-mixer.batch must be ≥ 1"):
        get_pass("approximate-mixer").run(program, replace(ctx, options={"approximate-mixer.batch": 0}))


def test_distill_restores_fidelity_after_pruning(setup):
    teacher, ctx, program = setup
    probe = make_probe(teacher, episodes=2)
    pruned = get_pass("prune").run(get_pass("approximate-mixer").run(program, ctx), ctx)
    before = fidelity(replay(pruned.team_module(), pruned.spec, probe), probe)
    student = get_pass("distill").run(pruned, ctx)
    after = fidelity(replay(student.team_module(), student.spec, probe), probe)
    assert after["max_abs_dq"] < before["max_abs_dq"]
    assert after["mean_abs_dq_tot"] < before["mean_abs_dq_tot"]
    assert after["action_agreement"] >= before["action_agreement"]
    curve = student.history[-1]["curve"]
    assert curve[-1]["total"] < curve[0]["total"]
    assert set(curve[0]) >= {"kl", "ce", "relation", "value", "resource", "total"}
    assert not any(p.requires_grad for p in student.agent.parameters())


def test_mixer_approximation_honours_its_learning_rate(setup):
    """lr=0 leaves the fitted mixer at its initialisation: the fit is worse than with the default lr."""
    _, ctx, program = setup
    fit = {lr: get_pass("approximate-mixer").run(program, replace(ctx, options={
        "approximate-mixer.steps": 20, **({"approximate-mixer.lr": lr} if lr is not None else {})})).history[-1]
        for lr in (None, "0")}
    assert fit["0"]["fit_mean_abs_err"] > fit[None]["fit_mean_abs_err"]
    frozen = get_pass("approximate-mixer").run(program, replace(ctx, options={"approximate-mixer.steps": 0}))
    assert frozen.history[-1]["fit_mean_abs_err"] == fit["0"]["fit_mean_abs_err"]


def test_ablation_names_the_weights_the_compile_used(setup):
    from types import SimpleNamespace

    from kdcc.reports.ablation import ablate_distillation

    _, ctx, program = setup
    ctx = replace(ctx, options={"distill.steps": 2, "distill.dagger_every": 0, "distill.w_relation": 0.7})
    records = [SimpleNamespace(name="import", program=program), SimpleNamespace(name="distill", program=None)]
    section = ablate_distillation(SimpleNamespace(records=records), ctx, episodes=1)
    labels = [row["label"] for row in section.blocks[0].rows]
    assert "without relation (weight 0.7 → 0)" in labels and "without kl (weight 1.0 → 0)" in labels
