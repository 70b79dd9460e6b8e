"""`kdcc eval BUNDLE --decentralised`: robots loaded one by one, each given only its own observation,
act exactly as the team step does — on the host libraries and on the ONNX graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdcc.api import evaluate
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import run_episodes
from kdcc.targets.bundle.agent_policy import open_agent_policies
from kdcc.targets.bundle.policy import open_bundle_policy

EPISODES = 20


@pytest.fixture(scope="module", params=["spread", "speaker_listener"])
def bundle(request, host_bundle):
    return host_bundle(request.param)


def _played(policy, spec):
    seen = []
    stats = run_episodes(make_env(spec.env), policy, EPISODES, 0,
                         on_step=lambda ep, t, s: seen.append(s["actions"].copy()))
    return np.stack(seen), stats.returns


@pytest.mark.parametrize("runner", ["library", "onnx"])
def test_robots_alone_act_as_the_team_step(bundle, runner):
    spec, team, _ = open_bundle_policy(bundle, runner=runner)
    _, robots, what = open_agent_policies(bundle, runner=runner)
    assert ("onnx" in what) == (runner == "onnx")
    team_actions, team_returns = _played(team, spec)
    robot_actions, robot_returns = _played(robots, spec)
    assert len(team_actions) == EPISODES * make_env(spec.env).max_steps  # every step of 20 episodes
    np.testing.assert_array_equal(robot_actions, team_actions)
    np.testing.assert_array_equal(robot_returns, team_returns)


def test_eval_decentralised_gives_the_team_score(bundle, capsys):
    team = evaluate(bundle, episodes=5, seed=3)
    robots = evaluate(bundle, episodes=5, seed=3, decentralised=True)
    assert robots.mean == team.mean and robots.std == team.std
    assert "loaded one by one" in capsys.readouterr().err


def test_each_robot_needs_only_its_own_observation(bundle):
    doc = json.loads((bundle / "profile.json").read_text())
    robots = [r for r in doc["robots"] if r["role"] != "monitor"]
    assert robots and all(r["needs_at_run_time"][0] == "its own observation" for r in robots)
    assert all("state" not in " ".join(r["needs_at_run_time"]) for r in robots)
    assert sorted(a for r in robots for a in r["agents"]) == list(range(doc["spec"]["n_agents"]))
    for r in robots:
        assert r["cost"]["flops"] > 0 and all((bundle / lib["path"]).is_file() for lib in r["libraries"].values())
    assert doc["robots"][-1]["role"] == "monitor"


def test_host_agent_carries_its_state_like_the_step_it_wraps(bundle):
    from kdcc.ir.agent_step import agent_example_inputs
    from kdcc.ir.roles import role_of
    from kdcc.ir.spec import MarlSpec
    from kdcc.targets.tvm.runtime import HostAgent, HostStep

    doc = json.loads((bundle / "profile.json").read_text())
    spec = MarlSpec.from_dict(doc["spec"])
    agent = spec.n_agents - 1
    role = role_of(spec, agent)
    lib = bundle / "lib" / "cpu" / f"{role.name}.so"
    fast = HostAgent(lib, agent_example_inputs(spec, role), role.n_actions, agent if role.shared else None)
    step = HostStep(lib, agent_example_inputs(spec, role))
    obs = np.random.default_rng(5).standard_normal((30, 1, role.obs_dim)).astype(np.float32)
    last, hidden = np.array([-1], np.int64), np.zeros((1, role.hidden_dim), np.float32)
    for t in range(30):
        if t == 25:  # a new episode
            fast.reset()
            last, hidden = np.array([-1], np.int64), np.zeros_like(hidden)
        extra = (np.array([agent], np.int64),) if role.shared else ()
        action, _, hidden = step(obs[t], last, hidden, *extra)
        last = np.asarray(action, np.int64).reshape(1)
        assert fast.act(obs[t]) == int(last[0])
