"""IR invariants: a good program passes; each kind of breakage is named (graph or output, and what)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdcc.inputs.teacher import load_teacher
from kdcc.ir.invariants import InvariantError, check_program
from kdcc.ir.program import Program, from_modules, trace
from kdcc.ir.team import TeamStep
from tests.conftest import make_speaker_listener_teacher, make_tiny_teacher


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Program:
    teacher = load_teacher(make_tiny_teacher(tmp_path_factory.mktemp("inv") / "tiny.pt"))
    return from_modules(teacher.spec, teacher.agent, teacher.mixer)


def test_imported_and_fused_programs_pass(program, tmp_path):
    check_program(program)
    check_program(program.copy(team=trace(TeamStep(program.spec, program.agent, program.mixer), "Team")))
    sl = load_teacher(make_speaker_listener_teacher(tmp_path / "sl.pt"))
    check_program(from_modules(sl.spec, sl.agent, sl.mixer).with_decision("x", widths=[8, 16], kept={"a": [1]}))


def test_a_node_nothing_uses_is_named(program):
    out = program.copy()
    first = next(iter(out.mixer.graph.nodes))
    with out.mixer.graph.inserting_after(first):
        out.mixer.graph.call_function(torch.neg, (first,), name="orphan")
    out.mixer.recompile()
    with pytest.raises(InvariantError, match="^graph mixer has nodes nothing uses: orphan$"):
        check_program(out)


def test_a_malformed_graph_fails_lint(program):
    out = program.copy()
    node = next(n for n in out.agent.graph.nodes if n.op == "call_module")
    node.target = "no_such_layer"
    with pytest.raises(InvariantError, match="^graph agent fails lint: "):
        check_program(out)


class _FlatQTot(nn.Module):
    """A team step whose Q_tot comes out [1, 1] instead of [1]."""

    def __init__(self, team: nn.Module):
        super().__init__()
        self.team = team

    def forward(self, obs, last_actions, hidden, state):
        actions, q, new_hidden, q_tot = self.team(obs, last_actions, hidden, state)
        return actions, q, new_hidden, q_tot.reshape(1, 1)


def test_team_outputs_must_fit_the_spec(program):
    team = trace(_FlatQTot(TeamStep(program.spec, program.agent, program.mixer)), "Team")
    with pytest.raises(InvariantError, match=r"^team step output q_tot is \[1, 1\], the spec says \[1\]$"):
        check_program(program.copy(team=team))


def test_a_team_step_that_does_not_run_on_the_spec_is_named(program):
    wider = program.spec.with_agent(hidden_dim=program.spec.agent.hidden_dim + 1)  # the graphs still say 16
    with pytest.raises(InvariantError, match="^team step fails on the spec's example input: RuntimeError: "):
        check_program(Program(wider, program.agent, program.mixer))


@pytest.mark.parametrize("decision, where", [
    ({"scores": torch.ones(2)}, "decision of p, scores: Tensor"),
    ({"widths": (8, 16)}, "decision of p, widths: tuple"),
    ({"kept": {1: [0]}}, "decision of p, kept: key 1 is not a string"),
    ({"value": torch.tensor(1.0).numpy()}, "decision of p, value: ndarray"),
])
def test_decisions_must_be_plain_data(program, decision, where):
    with pytest.raises(InvariantError, match=f"^{where}"):
        check_program(program.with_decision("p", **decision))
