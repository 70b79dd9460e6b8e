"""Episode certificates (kdcc.ir.bounds.episode, kdcc.marl.episode_certify, `kdcc certify --episode`): an episode
certified at ε plays exactly as unperturbed under sampled perturbations within ε at every step; ε = 0 certifies every
episode; the certified fraction never grows with ε; perturbing one agent certifies at least what perturbing all does;
feed-forward teachers work; the CLI prints and refuses a bad --perturb in one line (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdcc.cli.app import main
from kdcc.inputs.teacher import load_teacher
from kdcc.ir.program import from_modules
from kdcc.ir.roles import team_roles
from kdcc.marl.agents import role_network
from kdcc.marl.certify import observation_scale, visited_steps
from kdcc.marl.episode_certify import certify_episodes, certify_policies, play, team_policy
from kdcc.marl.rollout import run_episodes
from kdcc.marl.seeds import PROBE
from kdcc.marl.worlds import make_env
from tests.conftest import make_tiny_teacher

EPISODES = 4
GRID = (0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0)


def networks_of(path):
    teacher = load_teacher(path)
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    return teacher.spec, {r.name: role_network(program, r) for r in team_roles(teacher.spec)}


@pytest.fixture(scope="module", params=["rnn", "ff"])
def tiny(request, tmp_path_factory):
    """(spec, networks, played episodes, std scale) of a tiny GRU or feed-forward teacher."""
    path = make_tiny_teacher(tmp_path_factory.mktemp(request.param) / "tiny.pt", seed=3, kind=request.param)
    spec, networks = networks_of(path)
    seed = PROBE.first(EPISODES)
    scale = observation_scale(spec, visited_steps(spec, networks, EPISODES, seed), "std")
    return spec, networks, play(spec, networks, EPISODES, seed), scale


class Perturbed:
    """The deployed team fed observation + delta[t] at step t."""

    def __init__(self, team, deltas: np.ndarray):
        self.team, self.deltas, self.t = team, deltas, 0

    def reset(self) -> None:
        self.team.reset()
        self.t = 0

    def step(self, obs, last_actions, state):
        self.t += 1
        return self.team.step((obs + self.deltas[self.t - 1]).astype(np.float32), last_actions, state)


def perturbed_actions(spec, networks, seed: int, deltas: np.ndarray) -> np.ndarray:
    actions = []
    run_episodes(make_env(spec.env), Perturbed(team_policy(spec, networks), deltas), 1, seed,
                 on_step=lambda ep, t, step: actions.append(step["actions"]))
    return np.stack(actions)


def test_a_certified_episode_plays_exactly_as_unperturbed(tiny):
    """Every sampled perturbation within ε (uniform in the box, and corners: random signs at full radius, shrunk by
    0.1% so float32 rounding of obs + δ stays inside), at every step for every agent, replays the certified
    episode's actions step for step, in the world, through the deployed robots."""
    spec, networks, played, scale = tiny
    doc = certify_episodes(spec, networks, played, scale, GRID, None, bisect=True)
    radius = np.array(doc["radius"])
    eps = np.sort(radius)[-2]  # a verified ε at which at least two episodes are certified
    assert eps > 0
    rng = np.random.default_rng(0)
    shape = (played.actions.shape[1], spec.n_agents, spec.obs_dim)
    for e in np.flatnonzero(radius >= eps):
        for k in range(24):
            u = rng.uniform(-1, 1, shape) if k < 16 else rng.choice([-0.999, 0.999], shape)
            actions = perturbed_actions(spec, networks, int(played.seeds[e]), u * eps * scale)
            assert np.array_equal(actions, played.actions[e, : len(actions)]), (e, k)


def test_at_zero_every_episode_is_certified(tiny):
    spec, networks, played, scale = tiny
    doc = certify_episodes(spec, networks, played, scale, (0.0, 1e-9), None)
    assert [at["certified"] for at in doc["at"]] == [1.0, 1.0]
    assert all(at["lost"] == [] for at in doc["at"])
    assert doc["at"][0]["certified_return"] == pytest.approx(float(played.returns.mean()), abs=1e-3)


def test_the_certified_fraction_never_grows_with_eps(tiny):
    spec, networks, played, scale = tiny
    doc = certify_episodes(spec, networks, played, scale, GRID, None, bisect=True)
    fractions = [at["certified"] for at in doc["at"]]
    assert fractions == sorted(fractions, reverse=True) and fractions[0] == 1.0 and fractions[-1] < 1.0
    radius = np.array(doc["radius"])
    for at in doc["at"]:
        assert at["certified"] == pytest.approx((radius >= at["eps"]).mean())
        assert len(at["lost"]) == EPISODES - at["certified_episodes"]
        assert all(0 <= lost["step"] < played.steps[0] and 0 <= lost["agent"] < spec.n_agents for lost in at["lost"])
    assert doc["eps_50"] >= doc["eps_90"] >= 0


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_one_agent_perturbed_certifies_at_least_all(tiny, method):
    spec, networks, played, scale = tiny
    every = certify_episodes(spec, networks, played, scale, GRID, None, method)
    for i in range(spec.n_agents):
        one = certify_episodes(spec, networks, played, scale, GRID, i, method)
        for a, b in zip(one["at"], every["at"]):
            assert a["certified"] >= b["certified"], (i, a["eps"])


def test_the_hidden_box_contains_every_reachable_hidden_state():
    """One GRU step over a box of inputs and hidden states: every sampled (x, h) lands in the h' box and keeps each
    margin above its lower bound, by IBP and CROWN."""
    from kdcc.ir.bounds.certify import action_spec
    from kdcc.ir.bounds.episode import step_bounds, step_graph
    from kdcc.marl.qmix import RNNAgent

    torch.manual_seed(0)
    net = RNNAgent(10, 12, 4).double().eval()
    B = 6
    x0, h0 = torch.randn(B, 10, dtype=torch.float64), torch.randn(B, 12, dtype=torch.float64) * 0.3
    xr, hr = torch.rand(B, 10, dtype=torch.float64) * 0.1, torch.rand(B, 12, dtype=torch.float64) * 0.1
    with torch.no_grad():
        spec, _ = action_spec(net(x0, h0)[0].argmax(-1), torch.ones(B, 4, dtype=torch.bool))
        for method in ("ibp", "crown"):
            lower, (lo, hi) = step_bounds(step_graph(net, x0, xr, h0 - hr, h0 + hr), spec, method)
            for _ in range(200):
                sign = torch.rand(B, 10, dtype=torch.float64) * 2 - 1, torch.rand(B, 12, dtype=torch.float64) * 2 - 1
                q, h = net(x0 + sign[0] * xr, h0 + sign[1] * hr)
                assert bool(((h >= lo - 1e-12) & (h <= hi + 1e-12)).all()), method
                assert bool(((spec @ q.unsqueeze(-1)).squeeze(-1) >= lower - 1e-12).all()), method


def test_certify_episode_cli(tmp_path, capsys):
    teacher = make_tiny_teacher(tmp_path / "teacher.pt", seed=3)
    other = make_tiny_teacher(tmp_path / "other.pt", seed=4)
    argv = ["certify", str(other), "--teacher", str(teacher), "--episode", "--episodes", "2", "--eps", "0,0.001"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Certified episodes" in out and "teacher (teacher.pt): certified" in out and "ε (50% certified)" in out
    assert main(argv + ["--json", "--perturb", "agent:1", "--method", "ibp", "--bisect"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["perturb"] == "agent:1" and doc["bisect"] and doc["episodes"] == 2 and doc["seeds"] == [PROBE.start, PROBE.start + 1]
    assert sorted(doc["policies"]) == ["teacher (other.pt)", "teacher (teacher.pt)"]
    assert [at["eps"] for at in doc["policies"]["teacher (teacher.pt)"]["at"]] == [0.0, 0.001]
    for bad in (["--perturb", "agent:3"], ["--perturb", "some"], ["--eps", "0.1,x"], ["--eps", "-1"]):
        assert main(["certify", str(teacher), "--episode", "--episodes", "1", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kdcc certify: error: --"), err


def test_certify_policies_refuses_bad_episodes(tmp_path):
    from kdcc.core.errors import KdccError

    spec, networks = networks_of(make_tiny_teacher(tmp_path / "t.pt"))
    with pytest.raises(KdccError, match="--episodes must be positive"):
        certify_policies([("t", spec, networks)], 0, GRID)
