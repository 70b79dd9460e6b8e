"""Decentralised execution: agents acting alone, each on its own observation, act as the team step does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.ir.roles import team_roles
from kdcc.marl.agents import DecentralisedPolicy, agent_steps
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.passes import Budget
from tests.conftest import FAST, make_speaker_listener_teacher, make_tiny_teacher

EPISODES = 20


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """`student(hetero, skip=())`: the compiled program of the spread (or speaker-listener) teacher, compiled
    once per module for each (hetero, skip) and shared (read it, never change it)."""
    programs = {}

    def get(hetero: bool, skip: tuple[str, ...] = ()):
        if (hetero, skip) not in programs:
            d = tmp_path_factory.mktemp("student")
            if hetero:
                teacher = make_speaker_listener_teacher(d / "t.pt", seed=2, hidden=32)
            else:
                teacher = make_tiny_teacher(d / "t.pt", seed=2, hidden=32, hypernet_embed=32)
            out = compile_teacher(str(teacher), "host", None, CompileOptions(
                budget=Budget(ratio=2.0), keep=None, collect_episodes=4, options=FAST, skip=skip))
            programs[hetero, skip] = out.result.program
        return programs[hetero, skip]

    return get


def _actions(policy, env):
    seen = []
    stats = run_episodes(env, policy, EPISODES, 0, on_step=lambda ep, t, s: seen.append(s["actions"].copy()))
    return np.stack(seen), stats.returns


@pytest.mark.parametrize("hetero,skip", [(False, ()), (True, ()), (True, ("batch-agents",))],
                         ids=["spread-shared", "speaker-listener-batched", "speaker-listener-separate"])
def test_agents_acting_alone_equal_the_team_step(student, hetero, skip):
    program = student(hetero, skip)
    env = make_env(program.spec.env)
    team_actions, team_returns = _actions(TorchPolicy(program.spec, program.team_module()), env)
    alone_actions, alone_returns = _actions(DecentralisedPolicy.from_program(program), env)
    assert team_actions.shape[0] == EPISODES * env.max_steps
    np.testing.assert_array_equal(alone_actions, team_actions)
    np.testing.assert_array_equal(alone_returns, team_returns)


def test_roles_follow_the_networks(student):
    shared = student(hetero=False)
    assert [(r.name, r.agents, r.shared) for r in team_roles(shared.spec)] == [("agent", (0, 1, 2), True)]
    own = student(hetero=True)
    roles = team_roles(own.spec)
    assert [(r.name, r.obs_dim, r.n_actions) for r in roles] == [("agent0", 3, 3), ("agent1", 11, 5)]
    steps = agent_steps(own)
    # a speaker's step reads its 3 observations and nothing else: no state, no other agent
    phs = [n for n in steps["agent0"].graph.nodes if n.op == "placeholder"]
    assert [n.name for n in phs] == ["obs", "last_action", "hidden"]


def test_an_agent_step_is_the_team_steps_row(student):
    program = student(hetero=False)
    spec = program.spec
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(spec.n_agents, spec.obs_dim, generator=g)
    last = torch.tensor([-1, 2, 4])
    hidden = torch.randn(spec.n_agents, spec.agent.hidden_dim, generator=g)
    actions, q, new_hidden, _ = program.team_module()(obs, last, hidden, torch.zeros(spec.state_dim))
    step = agent_steps(program)["agent"]
    for i in range(spec.n_agents):
        a, qi, hi = step(obs[i:i + 1], last[i:i + 1], hidden[i:i + 1], torch.tensor([i]))
        assert int(a) == int(actions[i])
        torch.testing.assert_close(qi[0], q[i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(hi[0], new_hidden[i], rtol=1e-5, atol=1e-6)
