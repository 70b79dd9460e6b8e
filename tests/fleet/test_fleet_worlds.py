"""examples/fleet on worlds other than MPE: a 2-robot RWARE team and a 2-robot LBF team.

The simulator drives whatever world the bundle's spec names. Rewards are sparse in both (an untrained
team delivers no shelf and loads no food in 15 steps: its returns are 0), so equal returns alone would
prove little: the fleet's trace, each robot's own observation and the action it answered tick by tick,
must also be exactly what `kdcc eval --decentralised` sees and does on the same seeds. That comparison
fails when a robot is sent another observation, or keeps its hidden state into the next episode.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcc.api import evaluate
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.inputs.teacher import save_teacher
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.marl.rollout import run_episodes
from kdcc.marl.worlds import env_dims, make_env
from kdcc.passes import Budget
from kdcc.targets.bundle.agent_policy import open_agent_policies
from tests.conftest import FAST
from tests.fleet._fleet import build_robots, finish_simulator, robots, start_simulator, wait_simulator

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("g++") is None,
                                reason="needs cmake and g++")
SEED, EPISODES, LENGTH = 11, 3, 15
# world -> (its spec, the teacher's seed: one whose untrained team takes several actions there)
WORLDS = {"rware": (EnvSpec("rware:rware-tiny-2ag-v2", {"time_limit": LENGTH}), 1),
          "lbf": (EnvSpec("lbforaging:Foraging-8x8-2p-3f-v3", {"time_limit": LENGTH}), 3)}


def _teacher(path: Path, env: EnvSpec, seed: int) -> Path:
    """An untrained teacher whose action depends on what its agent sees: with fc2's initial bias, most seeds
    pick one action throughout, and a fleet that sent the wrong observation could still act the same."""
    spec = MarlSpec(**env_dims(env), agent=AgentSpec("rnn", 32), mixer=MixerSpec("qmix", 8, 2, 16), env=env)
    torch.manual_seed(seed)
    agent = build_agent(spec)
    with torch.no_grad():
        agent.fc2.bias.zero_()
    save_teacher(path, spec, agent, build_mixer(spec), {"trainer": "tests", "seed": seed})
    return path


@pytest.fixture(scope="module", params=list(WORLDS))
def team(request, tmp_path_factory):
    """(world id, bundle, robot binaries) of a tiny teacher of that world compiled for the host."""
    env, seed = WORLDS[request.param]
    pytest.importorskip(env.id.partition(":")[0], reason="needs kdcc[worlds]")
    d = tmp_path_factory.mktemp(f"fleet-{request.param}")
    out = compile_teacher(str(_teacher(d / "teacher.pt", env, seed)), "host", d / "bundle", CompileOptions(
        budget=Budget(ratio=2.0), keep=None, collect_episodes=4, options=FAST, certify_episodes=0))
    return env.id, out.out_dir, build_robots(out.out_dir, d / "fleet")


def _decentralised(bundle: Path) -> tuple[list[float], list[dict]]:
    """Per-episode returns and per-tick (own observations, actions) of the bundle's agents loaded one by one
    and given only their own observation, as `kdcc eval --decentralised` runs them."""
    spec, policy, _ = open_agent_policies(bundle)
    ticks: list[dict] = []

    def record(episode: int, t: int, s: dict) -> None:
        ticks.append({"episode": episode, "step": t, "actions": s["actions"].tolist(),
                      "obs": [s["obs"][i, : spec.obs_size(i)] for i in range(spec.n_agents)]})

    stats = run_episodes(make_env(spec.env), policy, EPISODES, SEED, on_step=record)
    return stats.returns.tolist(), ticks


def test_a_fleet_of_another_world_acts_as_kdcc_eval_decentralised(team, tmp_path):
    world, bundle, binaries = team
    assert [b.name for b in binaries] == ["robot_agent"] * 2
    out, trace = tmp_path / "summary.json", tmp_path / "trace.jsonl"
    with robots(binaries, tmp_path) as fleet:
        sim = start_simulator(bundle, [r.port for r in fleet], out, episodes=EPISODES, seed=SEED, deadline_ms=500,
                              trace=trace)
        summary = finish_simulator(sim, out, 60 + EPISODES * LENGTH * 0.5)
    assert summary["world"] == summary["scenario"] == world
    assert summary["misses"] == summary["late"] == summary["errors"] == [0, 0]
    sent = [json.loads(line) for line in trace.read_text().splitlines()]
    assert all(all(t["answered"]) for t in sent)

    returns, expected = _decentralised(bundle)
    assert summary["ticks"] == len(sent) == len(expected)
    for got, want in zip(sent, expected):
        where = f"episode {want['episode']} step {want['step']}"
        assert (got["episode"], got["step"]) == (want["episode"], want["step"]), where
        assert got["actions"] == want["actions"], where
        for i, own in enumerate(want["obs"]):
            assert np.array_equal(np.asarray(got["obs"][i], np.float32), own), f"{where}, agent {i}'s observation"
    assert len({a for t in sent for a in t["actions"]}) > 1  # the team did more than one thing: actions can differ
    assert summary["returns"] == returns
    assert summary["mean"] == evaluate(bundle, episodes=EPISODES, seed=SEED, decentralised=True).mean


def test_a_bundle_of_a_world_kdcc_cannot_make_is_one_line_before_any_robot_is_asked(tmp_path):
    """The simulator makes the spec's world before it pings a robot: an unknown one ends the run, naming it."""
    spec = MarlSpec(n_agents=2, obs_dim=4, state_dim=8, n_actions=3, agent=AgentSpec("rnn", 8),
                    mixer=MixerSpec("qmix", 8, 2, 16), env=EnvSpec("starcraft:3m", {}))
    (tmp_path / "profile.json").write_text(json.dumps({"spec": spec.to_dict()}))
    sim = start_simulator(tmp_path, [9000, 9001], tmp_path / "summary.json", episodes=1, seed=SEED, deadline_ms=50,
                          ready_timeout_s=1)
    status, stderr = wait_simulator(sim, 60)
    assert status == 1 and f"simulator: {tmp_path}: unknown environment 'starcraft:3m'" in stderr
    assert "no answer" not in stderr and not (tmp_path / "summary.json").exists()
