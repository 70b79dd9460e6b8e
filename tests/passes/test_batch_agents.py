"""batch-agents: per-agent networks stacked into one bmm per layer, exact, kept only when the cost model says so."""

import pytest
import torch

from kdcc.ir.program import from_modules
from kdcc.marl.batched_agents import BatchedAgents
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.passes import Budget, PassContext, get_pass
from kdcc.targets.profile import load_profile
from tests.conftest import REPO, speaker_listener_spec


def _split_program(kind: str = "rnn", widths=(8, 16), seed: int = 0):
    torch.manual_seed(seed)
    spec = speaker_listener_spec().with_agent(kind=kind, widths=widths, hidden_dim=max(widths))
    return from_modules(spec, build_agent(spec), build_mixer(spec))


@pytest.mark.parametrize("kind", ["rnn", "ff"])
def test_batched_networks_compute_what_the_separate_ones_do(kind):
    program = _split_program(kind)
    batched = BatchedAgents(program.agent, program.spec).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, program.spec.input_dim, generator=g)
    h = torch.randn(10, program.spec.agent.hidden_dim, generator=g)  # padded columns too: both must ignore them
    with torch.no_grad():
        q_split, h_split = program.agent(x, h)
        q_batched, h_batched = batched(x, h)
    assert torch.allclose(q_split, q_batched, atol=1e-6) and torch.allclose(h_split, h_batched, atol=1e-6)
    assert torch.equal(h_batched.view(5, 2, -1)[:, 0, 8:], torch.zeros(5, 8))  # the speaker's padding stays 0
    assert torch.equal(q_batched.view(5, 2, -1)[:, 0, 3:], torch.zeros(5, 2))  # actions the speaker lacks: 0


def test_the_pass_batches_when_the_cost_model_says_it_is_faster():
    program = _split_program()
    ctx = PassContext(teacher=None, profile=load_profile("orin"))
    out = get_pass("batch-agents").run(program, ctx)
    d = out.history[-1]
    assert d["applied"] and d["estimate_us"]["batched"] < d["estimate_us"]["separate"]
    assert out.agent.get_parameter("fc1_w").shape == (2, program.spec.input_dim, 16)  # [agents, in, widest]
    assert out.spec == program.spec and program.agent is not out.agent


def test_the_pass_keeps_separate_networks_when_kernels_cost_next_to_nothing(tmp_path):
    # with (almost) no per-kernel overhead only FLOPs and bytes count, and the padding makes batching dearer
    text = (REPO / "targets" / "profiles" / "host.toml").read_text()
    text = text.replace("kernel_overhead_us = 0.2", "kernel_overhead_us = 1e-9")
    (tmp_path / "flops_only.toml").write_text(text)
    program = _split_program(widths=(4, 32))
    out = get_pass("batch-agents").run(program, PassContext(teacher=None, profile=load_profile(
        str(tmp_path / "flops_only.toml"))))
    assert out.history[-1]["applied"] is False and out.agent is program.agent


def test_a_shared_network_is_left_alone(program):
    out = get_pass("batch-agents").run(program, PassContext(teacher=None, profile=load_profile("orin")))
    assert out.history[-1] == {"pass": "batch-agents", "applied": False,
                               "reason": "one shared network: batched already"}


def test_padding_that_would_break_prunes_flop_budget_is_not_applied():
    program = _split_program(widths=(4, 32))
    ctx = PassContext(teacher=None, profile=load_profile("orin"))
    free = get_pass("batch-agents").run(program, ctx)
    assert free.history[-1]["applied"]  # no prune decision: no budget to keep
    from kdcc.ir.printer import team_ops

    separate_flops = sum(c.flops for _, c in team_ops(program))
    tight = program.with_decision("prune", limits={"flops": separate_flops + 1})
    team_ctx = PassContext(teacher=None, profile=load_profile("orin"), budget=Budget(scope="team"))
    out = get_pass("batch-agents").run(tight, team_ctx)
    assert out.history[-1]["applied"] is False and "exceed the budget's flops" in out.history[-1]["reason"]
    # a robot budget: each robot runs its own network, unbatched, so the padding costs no robot anything
    assert get_pass("batch-agents").run(tight, ctx).history[-1]["applied"]
