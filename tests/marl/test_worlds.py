"""Every world behind the one interface (kdcc.marl.worlds): mpe2, a PettingZoo entry point, RWARE, LBF and VMAS.

For each: the sizes a spec needs, the same episode for the same seed whatever was
played before, an episode that ends within the world's length, and a tiny
teacher that collects, evaluates and compiles there (nothing downstream knows the
world by name).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdcc.api import collect, evaluate
from kdcc.cli.app import main as kdcc
from kdcc.core.errors import KdccError
from kdcc.inputs.teacher import save_teacher
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.marl.rollout import RandomPolicy, run_episodes
from kdcc.marl.worlds import env_dims, make_env

# id, kwargs, (n_agents, obs_dim, n_actions, state_dim), episode length
WORLDS = {
    "mpe": ("simple_spread_v3", {"N": 3, "max_cycles": 25}, (3, 18, 5, 54), 25),
    "pettingzoo": ("pettingzoo:mpe2.simple_reference_v3:parallel_env", {"max_cycles": 10}, (2, 21, 50, 42), 10),
    "rware": ("rware:rware-tiny-2ag-v2", {"time_limit": 20}, (2, 71, 5, 142), 20),
    "lbf": ("lbforaging:Foraging-8x8-2p-3f-v3", {"time_limit": 20}, (2, 15, 6, 30), 20),
    "vmas": ("vmas:navigation", {"n_agents": 2, "max_steps": 15}, (2, 18, 9, 36), 15),
}


@pytest.mark.parametrize("world", list(WORLDS))
def test_a_world_is_the_same_episode_for_the_same_seed(world):
    env_id, kwargs, dims, length = WORLDS[world]
    env = make_env(EnvSpec(env_id, kwargs))
    assert (env.n_agents, env.obs_dim, env.n_actions, env.state_dim) == dims and env.max_steps == length
    assert env_dims(EnvSpec(env_id, kwargs)) == dict(zip(("n_agents", "obs_dim", "n_actions", "state_dim"), dims))
    first = run_episodes(env, RandomPolicy(env.avail, 7), 3, 500).returns
    steps = []
    run_episodes(env, RandomPolicy(env.avail, 7), 1, 500, on_step=lambda ep, t, s: steps.append(s))
    assert 1 <= len(steps) <= length and steps[-1]["done"]
    assert steps[0]["obs"].shape == (dims[0], dims[1]) and steps[0]["state"].shape == (dims[3],)
    assert steps[0]["obs"].dtype == np.float32
    again = run_episodes(env, RandomPolicy(env.avail, 7), 3, 500).returns  # after other episodes were played
    assert np.array_equal(first, again)


def test_an_unknown_world_is_one_line_naming_what_is_known():
    with pytest.raises(KdccError, match=r"unknown environment 'starcraft:3m'.*rware:ENV-ID.*vmas:TASK"):
        make_env(EnvSpec("starcraft:3m", {}))
    with pytest.raises(KdccError, match="pettingzoo:MODULE:FUNCTION"):
        make_env(EnvSpec("pettingzoo:nowhere", {}))


def _teacher(path, world: str, seed: int = 0):
    env_id, kwargs, (n, obs, actions, state), _ = WORLDS[world]
    spec = MarlSpec(n_agents=n, obs_dim=obs, state_dim=state, n_actions=actions, agent=AgentSpec("rnn", 32),
                    mixer=MixerSpec("qmix", 8, 2, 16), env=EnvSpec(env_id, kwargs))
    torch.manual_seed(seed)
    save_teacher(path, spec, build_agent(spec), build_mixer(spec), {"trainer": "tests", "seed": seed})
    return path


@pytest.mark.parametrize("world", ["rware", "lbf", "vmas"])
def test_a_teacher_of_another_world_collects_evaluates_and_compiles(world, tmp_path, capsys):
    teacher = _teacher(tmp_path / "t.pt", world)
    data = collect(teacher, tmp_path / "d.npz", episodes=3)
    assert data.arrays["obs"].shape[1:] == (WORLDS[world][2][0], WORLDS[world][2][1])
    r = evaluate(teacher, episodes=3, seed=0)
    assert r.episodes == 3 and np.isfinite(r.mean) and np.isfinite(r.random_mean)
    record = tmp_path / "record"
    assert kdcc(["compile", str(teacher), "--target", "host", "--dataset", str(tmp_path / "d.npz"), "--no-build",
                 "--keep", "off", "--budget-flops", "1.5x", "--record", str(record), "-q", "--opt",
                 "distill.steps=10", "--opt", "distill.dagger_every=5", "--opt", "distill.dagger_episodes=1",
                 "--opt", "approximate-mixer.steps=10"]) == 0
    manifest = json.loads((record / "manifest.json").read_text())
    assert manifest["passes"][-1] == "eliminate-dead-code"
    distill = json.loads(next(record.glob("*_distill/metrics.json")).read_text())
    assert 0 <= distill["fidelity"]["action_agreement"] <= 1


@pytest.mark.parametrize("world", ["rware", "lbf"])
def test_an_epymarl_gymma_checkpoint_names_its_world(world, tmp_path):
    """EPyMARL's gymma key is the world's id; env_args.time_limit its episode length; the sizes come from the world."""
    from kdcc.api import load_teacher_like
    from tests.epymarl_fixture import write_model_dir

    env_id, _, (n, obs, actions, state), _ = WORLDS[world]
    spec = MarlSpec(n_agents=n, obs_dim=obs, state_dim=state, n_actions=actions, agent=AgentSpec("rnn", 16),
                    mixer=MixerSpec("qmix", 8, 2, 16), env=EnvSpec(env_id, {"time_limit": 12}))
    checkpoint, config, agent, _ = write_model_dir(tmp_path / "results/models/qmix/100", spec, "epymarl", key=env_id,
                                                   env_args={"key": env_id, "time_limit": 12, "seed": 1})
    teacher = load_teacher_like(checkpoint, config)
    assert teacher.spec.env == EnvSpec(env_id, {"time_limit": 12})
    assert (teacher.spec.n_agents, teacher.spec.obs_dim, teacher.spec.n_actions) == (n, obs, actions)
    for a, b in zip(teacher.agent.state_dict().values(), agent.state_dict().values()):
        assert torch.equal(a, b)
    assert make_env(teacher.spec.env).max_steps == 12
