"""`kdcc eval BUNDLE --decentralised`: robots loaded one by one, each given only its own observation,
act exactly as the team step does — on the host libraries and on the ONNX graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdcc.api import evaluate
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.marl.mpe import make_env
from kdcc.marl.rollout import run_episodes
from kdcc.passes import Budget
from kdcc.targets.bundle.agent_policy import open_agent_policies
from kdcc.targets.bundle.policy import open_bundle_policy
from tests.conftest import FAST, make_speaker_listener_teacher, make_tiny_teacher

EPISODES = 20


@pytest.fixture(scope="module", params=["spread", "speaker-listener"])
def bundle(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "spread":
        teacher = make_tiny_teacher(d / "t.pt", seed=4, hidden=32, hypernet_embed=32)
    else:
        teacher = make_speaker_listener_teacher(d / "t.pt", seed=4, hidden=32)
    compile_teacher(str(teacher), "host", d / "bundle", CompileOptions(budget=Budget(ratio=2.0), collect_episodes=4,
                                                                       options=FAST))
    return d / "bundle"


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
