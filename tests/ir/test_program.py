"""Importing a teacher as a Program: exact outputs, independent copies, a stable text form."""

from __future__ import annotations

import re

import torch

from kdcc.inputs.teacher import load_teacher
from kdcc.ir.printer import program_text
from kdcc.ir.program import from_modules
from tests.conftest import make_tiny_teacher


def _batches(spec, seed: int, count: int = 3):
    """Seeded agent batches (inputs, hidden) and mixer batches (agent_qs, states) of a few sizes."""
    g = torch.Generator().manual_seed(seed)
    for batch in range(1, count + 1):
        yield (torch.randn(batch * spec.n_agents, spec.input_dim, generator=g),
               torch.randn(batch * spec.n_agents, spec.agent.hidden_dim, generator=g),
               torch.randn(batch, spec.n_agents, generator=g),
               torch.randn(batch, spec.state_dim, generator=g))


def test_imported_program_outputs_equal_teacher_modules_exactly(tiny_teacher):
    teacher = load_teacher(tiny_teacher)
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    assert program.team is None and set(program.graphs()) == {"agent", "mixer"}
    with torch.no_grad():
        for inputs, hidden, agent_qs, states in _batches(teacher.spec, seed=1):
            q, h = program.agent(inputs, hidden)
            q_ref, h_ref = teacher.agent(inputs, hidden)
            assert torch.equal(q, q_ref) and torch.equal(h, h_ref)
            assert torch.equal(program.mixer(agent_qs, states), teacher.mixer(agent_qs, states))


def test_feedforward_agent_imports_exactly(tmp_path):
    teacher = load_teacher(make_tiny_teacher(tmp_path / "ff.pt", kind="ff"))
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    with torch.no_grad():
        for inputs, hidden, _, _ in _batches(teacher.spec, seed=2):
            assert torch.equal(program.agent(inputs, hidden)[0], teacher.agent(inputs, hidden)[0])


def test_import_does_not_share_weights_with_the_teacher(tiny_teacher):
    teacher = load_teacher(tiny_teacher)
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    assert program.agent.fc1.weight.data_ptr() != teacher.agent.fc1.weight.data_ptr()
    assert program.parameter_count() == teacher.param_count()


def test_copy_does_not_share_weights(tiny_teacher):
    teacher = load_teacher(tiny_teacher)
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    before = {k: v.clone() for k, v in program.mixer.state_dict().items()}
    clone = program.copy()
    own = dict(program.agent.named_parameters())
    for name, p in clone.agent.named_parameters():
        assert p.data_ptr() != own[name].data_ptr(), name
    with torch.no_grad():
        for p in clone.mixer.parameters():
            p.add_(1.0)
    assert all(torch.equal(v, before[k]) for k, v in program.mixer.state_dict().items())
    assert clone.spec == program.spec and clone.history == program.history


def test_text_is_stable_across_calls_and_imports(tiny_teacher):
    first = load_teacher(tiny_teacher)
    second = load_teacher(tiny_teacher)
    program = from_modules(first.spec, first.agent, first.mixer)
    text = program_text(program)
    assert text == program_text(program)
    assert text == program_text(from_modules(second.spec, second.agent, second.mixer))
    assert not re.search(r"0x[0-9a-fA-F]", text)
    assert text.startswith("program n_agents=3 obs=18 state=54 actions=5 agent=rnn/16 ")
    assert "\ngraph agent: " in text and "\ngraph mixer: " in text
    assert "%fc1                    = fc1:Linear(26→16)(%inputs)" in text
