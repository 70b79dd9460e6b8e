"""EPyMARL directories of VDN, IQL and MAPPO/IPPO runs (saved as EPyMARL's learners save them) and Weighted QMIX:
the recovered spec, what kdcc does with each file, and `kdcc eval` equal to running the saved modules by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kdcc.api import evaluate
from kdcc.cli.app import main
from kdcc.core.errors import KdccError
from kdcc.inputs.epymarl import load_model_dir
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.worlds import make_env
from kdcc.marl.qmix import RNNAgent
from tests.conftest import tiny_spec
from tests.epymarl_fixture import run_config, write_model_dir

SPREAD = EnvSpec("simple_spread_v3", {"N": 3, "max_cycles": 25})
# EPyMARL's alg configs (src/config/algs/*.yaml): the keys that decide what a checkpoint is
ALGS = {"vdn": {"name": "vdn", "mixer": "vdn", "learner": "q_learner", "agent_output_type": "q"},
        "iql": {"name": "iql", "mixer": None, "learner": "q_learner", "agent_output_type": "q"},
        "mappo": {"name": "mappo", "learner": "ppo_learner", "agent_output_type": "pi_logits", "critic_type": "cv_critic"},
        "ippo": {"name": "ippo", "learner": "ppo_learner", "agent_output_type": "pi_logits", "critic_type": "ac_critic"}}


def write_run(checkpoint: Path, algorithm: str, *, recurrent: bool = True, seed: int = 0) -> tuple[Path, Path, RNNAgent]:
    """agent.th (+ an empty mixer.th for VDN, critic.th for actor-critic) and config.json, as EPyMARL writes them."""
    torch.manual_seed(seed)
    n, obs, state, actions, hidden = 3, 18, 54, 5, 16
    agent = RNNAgent(obs + n, hidden, actions, use_rnn=recurrent)  # EPyMARL's defaults: obs_last_action false
    checkpoint.mkdir(parents=True)
    torch.save(agent.state_dict(), checkpoint / "agent.th")
    if algorithm == "vdn":
        torch.save({}, checkpoint / "mixer.th")  # VDNMixer has no parameters
    if algorithm in ("mappo", "ippo"):
        width = state + n if algorithm == "mappo" else obs + n  # CentralVCritic / ACCritic inputs
        critic = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                               nn.Linear(hidden, 1))
        torch.save({f"fc{i + 1}.{k}": v for i, layer in enumerate((0, 2, 4)) for k, v in
                    critic[layer].state_dict().items()}, checkpoint / "critic.th")
    torch.save({"state": {}, "param_groups": []}, checkpoint / ("agent_opt.th" if algorithm in ALGS else "opt.th"))
    spec = replace(tiny_spec(), obs_last_action=False)
    cfg = run_config(spec, "epymarl", hidden_dim=hidden, use_rnn=recurrent, **ALGS[algorithm])
    if algorithm in ("mappo", "ippo"):
        for key in ("mixer", "mixing_embed_dim", "hypernet_layers", "hypernet_embed"):
            cfg.pop(key)
    config = checkpoint / "config.json"
    config.write_text(json.dumps(cfg))
    return checkpoint, config, agent.eval()


def by_hand(agent: RNNAgent, episodes: int) -> float:
    """Mean team return of greedy actions from the saved agent, its inputs built by hand (obs ‖ agent id)."""
    env, returns = make_env(SPREAD), []
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        h, total = agent.init_hidden(3), 0.0
        for _ in range(env.max_steps):
            with torch.no_grad():
                out, h = agent(torch.cat([torch.from_numpy(obs), torch.eye(3)], -1), h)
            step = env.step(out.argmax(-1).numpy())
            obs, total = step.obs, total + step.reward
            if step.done:
                break
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.parametrize("algorithm, mixer, recurrent", [("vdn", "vdn", False), ("iql", "none", True),
                                                         ("mappo", "none", True), ("ippo", "none", False)])
def test_run_loads_as_its_algorithm_and_evaluates_as_its_own_modules(tmp_path, algorithm, mixer, recurrent):
    ckpt, config, agent = write_run(tmp_path / "results/models/run/1000", algorithm, recurrent=recurrent)
    teacher = load_model_dir(ckpt, config, quiet=True)
    assert teacher.spec == MarlSpec(n_agents=3, obs_dim=18, state_dim=54, n_actions=5, env=SPREAD,
                                    agent=AgentSpec("rnn" if recurrent else "ff", 16), mixer=MixerSpec(mixer),
                                    obs_last_action=False, algorithm=algorithm)
    assert list(teacher.mixer.parameters()) == []
    parts = teacher.provenance["parts"]
    assert ("logits" in parts["agent"]) == (algorithm in ("mappo", "ippo"))
    if algorithm in ("mappo", "ippo"):
        assert parts["critic"].startswith("critic.th not used")
    assert evaluate(ckpt, episodes=3, seed=0, config=config).mean == pytest.approx(by_hand(agent, 3), abs=1e-4)


def test_inspect_names_the_algorithm_and_each_part(tmp_path, capsys):
    ckpt, config, _ = write_run(tmp_path / "results/models/run/1000", "mappo")
    assert main(["inspect", str(ckpt), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "MAPPO (actor emitting action logits; greedy = argmax)" in out
    assert "critic (kdcc)" in out and "critic.th not used" in out
    assert "none (actor-critic); q_tot reports the sum of the chosen logits" in out


def test_weighted_qmix_loads_its_qmix_mixer_and_says_the_rest_is_ignored(tmp_path, capsys):
    ckpt, config, *_ = write_model_dir(tmp_path / "results/models/wqmix/500", tiny_spec(), "epymarl",
                                       name="ow_qmix", central_mixer="ff")
    torch.save({"weight": torch.zeros(2)}, ckpt / "central_mixer.th")
    teacher = load_model_dir(ckpt, config)
    assert teacher.spec.algorithm == "qmix" and teacher.spec.mixer.kind == "qmix"
    assert "Weighted QMIX: acting uses its QMIX mixer (mixer.th); the central estimate (central_mixer.th)" \
        in capsys.readouterr().err


def test_contradictions_are_one_line_errors(tmp_path):
    ckpt, config, _ = write_run(tmp_path / "a/1", "vdn")
    torch.save({"w": torch.zeros(1)}, ckpt / "mixer.th")
    with pytest.raises(KdccError, match="mixer.th: holds weights, but VDN's mixer is a parameter-free sum"):
        load_model_dir(ckpt, config)
    ckpt, config, _ = write_run(tmp_path / "b/1", "iql")
    config.write_text(json.dumps({**json.loads(config.read_text()), "mixer": "qtran"}))
    with pytest.raises(KdccError, match="mixer 'qtran': kdcc reads QMIX, VDN and IQL"):
        load_model_dir(ckpt, config)
    config.write_text(json.dumps({**json.loads(config.read_text()), "mixer": "qmix"}))
    with pytest.raises(KdccError, match="no mixer.th, but the config says mixer 'qmix'"):
        load_model_dir(ckpt, config)
