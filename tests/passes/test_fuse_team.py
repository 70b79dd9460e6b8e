"""fuse-team: one batched team graph, exactly equal to the unfused agent graph and mixer."""

from __future__ import annotations

import torch

from kdcc.ir.annotate import graph_costs
from kdcc.ir.printer import annotate_program, program_text
from kdcc.ir.team import team_example_inputs
from kdcc.marl.qmix import build_inputs
from kdcc.passes import get_pass

fuse_team = get_pass("fuse-team").run


def _steps(team, spec, seeds=range(4)):
    """Run a team-step module over a few seeded steps, carrying the hidden state from zero."""
    hidden = torch.zeros(spec.n_agents, spec.agent.hidden_dim)
    outputs = []
    with torch.no_grad():
        for seed in seeds:
            obs, last_actions, _, state = team_example_inputs(spec, seed)
            out = team(obs, last_actions, hidden, state)
            hidden = out[2]
            outputs.append(out)
    return outputs


def _flops(gm) -> int:
    return sum(c.flops for _, c in graph_costs(gm))


def test_golden_text(program, ctx, golden):
    golden("fuse-team", program_text(fuse_team(program, ctx)))


def test_outputs_equal_unfused_agent_and_mixer_exactly(program, ctx):
    fused = fuse_team(program, ctx)
    unfused_steps = _steps(program.team_module(), program.spec)
    for unfused, batched in zip(unfused_steps, _steps(fused.team_module(), program.spec)):
        for a, b in zip(unfused, batched):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_outputs_match_agents_run_one_by_one(program, ctx):
    """Against the definition: the agent network called once per agent, then the mixer."""
    spec = program.spec
    fused = fuse_team(program, ctx)
    obs, last_actions, hidden, state = team_example_inputs(spec, seed=7)
    with torch.no_grad():
        actions, q, new_hidden, q_tot = fused.team(obs, last_actions, hidden, state)
        inputs = build_inputs(spec, obs[None], last_actions[None])[0]
        per_agent = [program.agent(inputs[i:i + 1], hidden[i:i + 1]) for i in range(spec.n_agents)]
        q_ref = torch.cat([qi for qi, _ in per_agent])
        h_ref = torch.cat([hi for _, hi in per_agent])
        chosen = q_ref.gather(1, q_ref.argmax(-1, keepdim=True)).reshape(1, -1)
        q_tot_ref = program.mixer(chosen, state[None]).reshape(1)
    torch.testing.assert_close(q, q_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(new_hidden, h_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(q_tot, q_tot_ref, atol=1e-5, rtol=0)
    assert torch.equal(actions, q_ref.argmax(-1))


def test_one_batched_call_per_layer_and_same_weights(program, ctx):
    spec = program.spec
    fused = annotate_program(fuse_team(program, ctx))
    calls = {n.target: n for n in fused.team.graph.nodes if n.op == "call_module" and n.target.startswith("agent.")}
    assert list(calls) == ["agent.fc1", "agent.rnn", "agent.fc2"]  # once each, not once per agent
    assert calls["agent.fc1"].meta["tensor_meta"].shape == (spec.n_agents, spec.agent.hidden_dim)
    assert set(fused.graphs()) == {"team"}
    assert fused.parameter_count() == program.parameter_count()
    for name, p in program.agent.named_parameters():
        assert torch.equal(fused.team.get_parameter(f"agent.{name}"), p)


def test_metrics_and_decision(program, ctx):
    spec = program.spec
    annotate_program(program)
    fused = annotate_program(fuse_team(program, ctx))
    glue = 3 * spec.n_agents * spec.n_actions  # one-hot compare, action mask add, argmax
    assert _flops(fused.team) == _flops(program.agent) + _flops(program.mixer) + glue
    assert fused.history[-1] == {"pass": "fuse-team", "applied": True, "agents_batched": spec.n_agents,
                                 "nodes": len(fused.team.graph.nodes)}


def test_does_not_apply_to_a_fused_program(program, ctx):
    fused = fuse_team(program, ctx)
    text = program_text(fused)
    again = fuse_team(fused, ctx)
    assert again.history[-1] == {"pass": "fuse-team", "applied": False, "reason": "already fused"}
    assert program_text(again) == text


def test_input_program_is_not_mutated(program, ctx):
    text = program_text(program)
    weights = {k: v.clone() for k, v in program.agent.state_dict().items()}
    fuse_team(program, ctx)
    assert program.team is None and program.history == ()
    assert program_text(program) == text
    assert all(torch.equal(v, weights[k]) for k, v in program.agent.state_dict().items())
