"""eliminate-dead-code: unused nodes go, and so do the weights only they used; outputs do not change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdcc.ir.printer import program_text
from kdcc.ir.program import Program
from kdcc.passes import get_pass

eliminate_dead_code = get_pass("eliminate-dead-code").run


@pytest.fixture
def with_dead_code(program) -> Program:
    """The tiny teacher's program plus an unused layer, an op on its result and an unused weight read."""
    out = program.copy()
    gm = out.agent
    fc1 = next(n for n in gm.graph.nodes if n.name == "fc1")
    gm.add_submodule("unused", nn.Linear(16, 4))
    gm.register_parameter("orphan", nn.Parameter(torch.ones(7), requires_grad=False))
    with gm.graph.inserting_after(fc1):
        layer = gm.graph.call_module("unused", (fc1,))
    with gm.graph.inserting_after(layer):
        gm.graph.call_function(torch.tanh, (layer,))
    with gm.graph.inserting_after(fc1):
        gm.graph.get_attr("orphan")
    gm.recompile()
    return out


def _agent_outputs(program: Program, seed: int = 0):
    spec = program.spec
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(spec.n_agents, spec.input_dim, generator=g)
    hidden = torch.randn(spec.n_agents, spec.agent.hidden_dim, generator=g)
    with torch.no_grad():
        return program.agent(inputs, hidden)


def test_golden_text(with_dead_code, ctx, golden):
    golden("eliminate-dead-code", program_text(eliminate_dead_code(with_dead_code, ctx)))


def test_outputs_unchanged(with_dead_code, ctx):
    after = eliminate_dead_code(with_dead_code, ctx)
    for a, b in zip(_agent_outputs(with_dead_code), _agent_outputs(after)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_removes_the_dead_nodes_and_their_weights(program, with_dead_code, ctx):
    text = program_text(with_dead_code)
    assert "%unused" in text and "%tanh" in text and "%orphan" in text
    assert with_dead_code.parameter_count() == program.parameter_count() + (16 * 4 + 4) + 7
    after = eliminate_dead_code(with_dead_code, ctx)
    assert after.history[-1] == {"pass": "eliminate-dead-code", "removed": {"agent": ["orphan", "unused", "tanh"]}}
    assert not hasattr(after.agent, "unused") and not hasattr(after.agent, "orphan")
    assert after.parameter_count() == program.parameter_count()
    assert program_text(after) == program_text(program)  # back to the clean import, costs included


def test_nothing_to_remove_from_a_clean_program(program, ctx):
    for before in (program, get_pass("fuse-team").run(program, ctx)):
        text = program_text(before)
        after = eliminate_dead_code(before, ctx)
        assert after.history[-1] == {"pass": "eliminate-dead-code", "removed": {}}
        assert program_text(after) == text


def test_input_program_is_not_mutated(with_dead_code, ctx):
    text = program_text(with_dead_code)
    eliminate_dead_code(with_dead_code, ctx)
    assert program_text(with_dead_code) == text
    assert hasattr(with_dead_code.agent, "unused") and with_dead_code.history == ()
