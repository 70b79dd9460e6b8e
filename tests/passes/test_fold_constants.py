"""fold-constants: |W1| and |W_final| of a state-independent mixer become constants; nothing else moves."""

from __future__ import annotations

import pytest
import torch

from kdcc.ir.annotate import graph_costs
from kdcc.ir.printer import annotate_program, program_text
from kdcc.ir.program import Program, from_modules
from kdcc.ir.team import team_example_inputs
from kdcc.marl.qmix import StaticMixer, build_agent, build_mixer
from kdcc.passes import get_pass
from tests.conftest import tiny_spec

fold_constants = get_pass("fold-constants").run
fuse_team = get_pass("fuse-team").run


@pytest.fixture
def static_program() -> Program:
    spec = tiny_spec().with_mixer(kind="static")
    torch.manual_seed(3)
    mixer = build_mixer(spec)
    assert isinstance(mixer, StaticMixer)
    return from_modules(spec, build_agent(spec), mixer)


def _mixer_batches(spec, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, spec.n_agents, generator=g), torch.randn(b, spec.state_dim, generator=g))
            for b in (1, 4)]


def _flops(gm) -> int:
    return sum(c.flops for _, c in graph_costs(gm))


def test_golden_text(static_program, ctx, golden):
    golden("fold-constants", program_text(fold_constants(static_program, ctx)))


def test_outputs_unchanged(static_program, ctx):
    folded = fold_constants(static_program, ctx)
    with torch.no_grad():
        for agent_qs, states in _mixer_batches(static_program.spec):
            torch.testing.assert_close(folded.mixer(agent_qs, states), static_program.mixer(agent_qs, states),
                                       atol=1e-5, rtol=0)


def test_folds_abs_of_static_weights(static_program, ctx):
    spec = static_program.spec
    annotate_program(static_program)
    folded = annotate_program(fold_constants(static_program, ctx))
    assert folded.history[-1] == {"pass": "fold-constants", "folded": {"mixer": ["abs_1", "abs_2"]}}
    text = program_text(folded)
    assert "%_folded_abs_1" in text and "%_folded_abs_2" in text and "abs(" not in text
    assert torch.equal(folded.mixer.get_buffer("_folded_abs_1"), static_program.mixer.w_1.abs())
    assert torch.equal(folded.mixer.get_buffer("_folded_abs_2"), static_program.mixer.w_final.abs())
    # |W1| (n·E elements) and |W_final| (E) are no longer computed at every step.
    saved = spec.n_agents * spec.mixer.embed_dim + spec.mixer.embed_dim
    assert _flops(folded.mixer) == _flops(static_program.mixer) - saved
    assert len(folded.mixer.graph.nodes) == len(static_program.mixer.graph.nodes) - 2
    # The raw weights only the folded nodes read are gone; their folded values are the stored weights now.
    assert not hasattr(folded.mixer, "w_1") and not hasattr(folded.mixer, "w_final")
    assert folded.parameter_count() == static_program.parameter_count()


def test_folds_inside_the_fused_team_graph(static_program, ctx):
    fused = fuse_team(static_program, ctx)
    folded = fold_constants(fused, ctx)
    assert folded.history[-1]["folded"] == {"team": ["abs_1", "abs_2"]}
    inputs = team_example_inputs(static_program.spec, seed=5)
    with torch.no_grad():
        for a, b in zip(fused.team(*inputs), folded.team(*inputs)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_nothing_to_fold_in_a_hypernetwork_teacher(program, ctx):
    """Every QMIX weight is multiplied by the state first, so no node depends on constants only."""
    for before in (program, fuse_team(program, ctx)):
        text = program_text(before)
        after = fold_constants(before, ctx)
        assert after.history[-1] == {"pass": "fold-constants", "folded": {}}
        assert program_text(after) == text


def test_input_program_is_not_mutated(static_program, ctx):
    text = program_text(static_program)
    fold_constants(static_program, ctx)
    assert program_text(static_program) == text
    assert hasattr(static_program.mixer, "w_1") and static_program.history == ()
