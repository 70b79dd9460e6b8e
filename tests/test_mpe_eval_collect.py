"""MPE in the loop: eval determinism, collect -> npz round trip, the example teacher beats random."""

import json

import numpy as np
import pytest

from kdcc.api import collect, evaluate
from kdcc.cli.app import main
from kdcc.core.errors import KdccError
from kdcc.inputs.dataset import load_dataset
from kdcc.ir.spec import EnvSpec
from kdcc.marl.worlds import make_env


def test_team_env_shapes_and_team_reward():
    env = make_env(EnvSpec("simple_spread_v3", {"N": 3}))
    obs, state = env.reset(seed=0)
    assert obs.shape == (3, 18) and state.shape == (54,) and env.n_actions == 5
    r = env.step(np.array([1, 2, 3]))
    from mpe2 import simple_spread_v3
    raw = simple_spread_v3.parallel_env(N=3, max_cycles=25, continuous_actions=False)
    raw.reset(seed=0)
    _, rewards, *_ = raw.step({"agent_0": 1, "agent_1": 2, "agent_2": 3})
    assert r.reward == pytest.approx(sum(rewards.values())) and r.reward != 0


def test_heterogeneous_scenario_is_padded_and_masked():
    env = make_env(EnvSpec("simple_speaker_listener_v4", {}))
    obs, _ = env.reset(seed=0)
    assert env.obs_sizes == [3, 11] and env.action_sizes == [3, 5]
    assert obs.shape == (2, 11) and env.avail[0].tolist() == [1, 1, 1, 0, 0]


def test_eval_is_deterministic_for_a_fixed_seed(tiny_teacher):
    a = evaluate(tiny_teacher, episodes=3, seed=5)
    b = evaluate(tiny_teacher, episodes=3, seed=5)
    c = evaluate(tiny_teacher, episodes=3, seed=6)
    assert a.mean == b.mean and a.random_mean == b.random_mean
    assert a.mean != c.mean


def test_collect_round_trip(tiny_teacher, tmp_path):
    out = tmp_path / "data.npz"
    data = collect(tiny_teacher, out, episodes=4, seed=1, epsilon=0.2)
    back = load_dataset(out)
    assert len(back) == 4 * 25 and back.episodes == 4
    for k, v in data.arrays.items():
        assert np.array_equal(back.arrays[k], v), k
    assert back.arrays["episode_end"].reshape(4, 25)[:, -1].all()
    assert (back.arrays["last_actions"].reshape(4, 25, 3)[:, 0] == -1).all()
    # the recorded hidden state entering step t+1 is the teacher's output at step t: replay one step
    import torch

    from kdcc.inputs.teacher import load_teacher
    from kdcc.ir.team import TeamStep
    t = load_teacher(tiny_teacher)
    team = TeamStep(t.spec, t.agent, t.mixer)
    arr = back.arrays
    with torch.no_grad():
        _, q, h, q_tot = team(*(torch.from_numpy(arr[k][3]) for k in ("obs", "last_actions", "hidden", "state")))
    assert np.allclose(q.numpy(), arr["q"][3], atol=1e-6)
    assert np.allclose(h.numpy(), arr["hidden"][4], atol=1e-6)
    assert q_tot.item() == pytest.approx(float(arr["q_tot"][3]), abs=1e-5)
    # same inputs and seed: byte-identical file
    collect(tiny_teacher, tmp_path / "again.npz", episodes=4, seed=1, epsilon=0.2)
    assert (tmp_path / "again.npz").read_bytes() == out.read_bytes()


def test_eval_cli_json_and_bad_episode_count(tiny_teacher, capsys):
    assert main(["eval", str(tiny_teacher), "--episodes", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["episodes"] == 2 and "random_mean" in r
    assert main(["eval", str(tiny_teacher), "--episodes", "0"]) == 2
    assert "--episodes must be positive" in capsys.readouterr().err
    with pytest.raises(KdccError):
        collect(tiny_teacher, "/tmp/x.npz", episodes=1, epsilon=2.0)


def test_example_teacher_beats_random_by_a_wide_margin(example_teacher):
    r = evaluate(example_teacher, episodes=20, seed=0)
    margin = r.mean - r.random_mean
    stderr = ((r.std**2 + r.random_std**2) / r.episodes) ** 0.5
    assert margin > 0.2 * abs(r.random_mean) and margin > 2 * stderr, (r.mean, r.random_mean, stderr)


def test_example_speaker_listener_teacher_beats_random():
    from tests.conftest import REPO

    r = evaluate(REPO / "examples" / "speaker_listener_teacher.pt", episodes=20, seed=0)
    margin = r.mean - r.random_mean
    stderr = ((r.std**2 + r.random_std**2) / r.episodes) ** 0.5
    assert margin > 0.3 * abs(r.random_mean) and margin > 2 * stderr, (r.mean, r.random_mean, stderr)


def test_simple_reference_teacher_collects_and_evaluates(tmp_path):
    import torch

    from kdcc.inputs.teacher import save_teacher
    from kdcc.ir.spec import AgentSpec, MarlSpec, MixerSpec
    from kdcc.marl.qmix import build_agent, build_mixer

    env = make_env(EnvSpec("simple_reference_v3", {}))
    assert env.n_agents == 2 and env.obs_sizes == [21, 21] and env.n_actions == 50 and env.state_dim == 42
    spec = MarlSpec(2, 21, 42, 50, AgentSpec("rnn", 16), MixerSpec("qmix", 8, 2, 16),
                    EnvSpec("simple_reference_v3", {"max_cycles": 25}))
    torch.manual_seed(0)
    save_teacher(tmp_path / "ref.pt", spec, build_agent(spec), build_mixer(spec))
    data = collect(tmp_path / "ref.pt", tmp_path / "ref.npz", episodes=2, seed=0)
    assert data.arrays["obs"].shape == (50, 2, 21) and data.arrays["q"].shape == (50, 2, 50)
    assert not data.spec.heterogeneous  # same sizes: one shared network, as before
    r = evaluate(tmp_path / "ref.pt", episodes=2, seed=0)
    assert np.isfinite(r.mean) and r.mean != r.random_mean
