"""normalize-eval: eval mode, no gradients, float32 weights; exact when the weights fit float32."""

from __future__ import annotations

import pytest
import torch

from kdcc.ir.printer import program_text
from kdcc.ir.program import Program
from kdcc.passes import get_pass

normalize_eval = get_pass("normalize-eval").run


@pytest.fixture
def training_state(program) -> Program:
    """The tiny teacher's program left as training code might: float64 weights, train mode, gradients on.

    float32 -> float64 is exact, so normalising back must give the teacher's float32 weights bit for bit.
    """
    out = program.copy()
    for gm in out.graphs().values():
        gm.double().train()
        for p in gm.parameters():
            p.requires_grad_(True)
    return out


def _team_outputs(program: Program, seed: int = 0):
    spec = program.spec
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(spec.n_agents, spec.input_dim, generator=g)
    hidden = torch.randn(spec.n_agents, spec.agent.hidden_dim, generator=g)
    agent_qs, states = torch.randn(2, spec.n_agents, generator=g), torch.randn(2, spec.state_dim, generator=g)
    with torch.no_grad():
        return (*program.agent(inputs, hidden), program.mixer(agent_qs, states))


def test_golden_text(training_state, ctx, golden):
    golden("normalize-eval", program_text(normalize_eval(training_state, ctx)))


def test_outputs_equal_the_float32_teacher(program, training_state, ctx):
    after = normalize_eval(training_state, ctx)
    for a, b in zip(_team_outputs(program), _team_outputs(after)):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_inference_form_and_decision(program, training_state, ctx):
    after = normalize_eval(training_state, ctx)
    tensors = [t for gm in after.graphs().values() for t in (*gm.parameters(), *gm.buffers())]
    assert all(t.dtype == torch.float32 and not t.requires_grad for t in tensors)
    assert not any(m.training for gm in after.graphs().values() for m in gm.modules())
    n_float = sum(1 for gm in program.graphs().values() for _ in (*gm.parameters(), *gm.buffers()))
    assert after.history[-1] == {"pass": "normalize-eval", "converted_to_fp32": n_float}
    for name, p in program.agent.named_parameters():
        assert torch.equal(after.agent.get_parameter(name), p), name
    assert program_text(after) == program_text(program)


def test_already_normal_program_is_unchanged(program, ctx):
    for before in (program, get_pass("fuse-team").run(program, ctx)):
        text = program_text(before)
        after = normalize_eval(before, ctx)
        assert after.history[-1] == {"pass": "normalize-eval", "converted_to_fp32": 0}
        assert program_text(after) == text


def test_input_program_is_not_mutated(training_state, ctx):
    normalize_eval(training_state, ctx)
    p = training_state.agent.fc1.weight
    assert p.dtype == torch.float64 and p.requires_grad and training_state.agent.training
    assert training_state.history == ()
