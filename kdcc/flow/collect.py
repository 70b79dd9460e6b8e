"""Teacher rollouts in MPE as a dataset, in memory: what `kdcc collect` writes and a compile trains on."""

from __future__ import annotations

import numpy as np
import torch

from kdcc.core.progress import progress_bar
from kdcc.inputs.dataset import Dataset
from kdcc.inputs.teacher import Teacher
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import TorchPolicy, run_episodes

__all__ = ["collect_dataset"]


def collect_dataset(teacher: Teacher, source_name: str, episodes: int = 200, seed: int = 0,
                    epsilon: float = 0.1) -> Dataset:
    """Roll the teacher out in MPE (ε-random actions for coverage) and record what later passes need."""
    spec = teacher.spec
    env = make_env(spec.env)
    policy = TorchPolicy.from_modules(spec, teacher.agent, teacher.mixer, env.avail)
    rows: dict[str, list] = {k: [] for k in ("obs", "state", "last_actions", "actions", "rewards",
                                              "episode_end", "hidden", "q", "q_tot")}

    def record(ep, t, step):
        for key in ("obs", "state", "last_actions", "actions"):
            rows[key].append(step[key])
        rows["rewards"].append(step["reward"])
        rows["episode_end"].append(step["done"])
        for key in ("hidden", "q", "q_tot"):
            rows[key].append(policy.last[key])

    torch.manual_seed(seed)
    with progress_bar("collect", episodes) as advance:
        run_episodes(env, policy, episodes, seed, epsilon=epsilon, on_step=record, on_episode=lambda _: advance())
    arrays = {
        "obs": np.stack(rows["obs"]).astype(np.float32),
        "state": np.stack(rows["state"]).astype(np.float32),
        "avail": np.broadcast_to(env.avail, (len(rows["obs"]), *env.avail.shape)).astype(np.float32),
        "last_actions": np.stack(rows["last_actions"]).astype(np.int64),
        "actions": np.stack(rows["actions"]).astype(np.int64),
        "rewards": np.asarray(rows["rewards"], dtype=np.float32),
        "episode_end": np.asarray(rows["episode_end"], dtype=bool),
        "hidden": np.stack(rows["hidden"]).astype(np.float32),
        "q": np.stack(rows["q"]).astype(np.float32),
        "q_tot": np.asarray(rows["q_tot"], dtype=np.float32),
    }
    return Dataset(spec, arrays, {"teacher": source_name, "episodes": episodes, "seed": seed, "epsilon": epsilon})
