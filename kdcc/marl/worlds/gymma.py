"""Gymnasium multi-agent environments as EPyMARL's `gymma` wrapper names them: RWARE and LBF.

The spec's `env.id` is EPyMARL's `env_args.key` — `rware:rware-tiny-2ag-v2`,
`lbforaging:Foraging-8x8-2p-3f-v3` — whose module registers the id with
gymnasium on import; `env.kwargs` go to `gymnasium.make`, except `time_limit`,
EPyMARL's episode length (default: the environment's own; RWARE's is 500
steps). These worlds have no global state: the mixer's state is the agents'
observations concatenated, as EPyMARL's gymma wrapper builds it. Every action is
available to every agent (EPyMARL's `get_avail_actions` for gymma). LBF keeps
its previous episode's players while it spawns the next one, so the same seed
gave another episode depending on what was played before; the adapter therefore
builds a fresh environment at every reset (about 0.1 ms here), which makes an
episode a function of its seed alone.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.ir.spec import EnvSpec
from kdcc.marl.worlds.base import StepResult, full_avail, stack_padded

__all__ = ["GYMMA_MODULES", "is_gymma_world", "GymmaTeam"]

# the module before the ':' of an EPyMARL gymma key -> the package that registers its ids
GYMMA_MODULES = {"rware": "rware", "lbforaging": "lbforaging"}
_OWN_KWARGS = ("time_limit",)


def is_gymma_world(env_id: str) -> bool:
    return env_id.partition(":")[0] in GYMMA_MODULES and ":" in env_id


class GymmaTeam:
    """A gymnasium environment with a tuple of per-agent observations and discrete actions, as one team."""

    def __init__(self, env_spec: EnvSpec):
        module, _, name = env_spec.id.partition(":")
        try:
            import gymnasium

            importlib.import_module(GYMMA_MODULES[module])
        except ImportError as e:
            raise KdccError(f"environment {env_spec.id!r} needs the package {module!r} "
                            f"(pip install 'kdcc[worlds]'): {e}") from None
        self._gym, self.id = gymnasium, name
        self.kwargs = {k: v for k, v in env_spec.kwargs.items() if k not in _OWN_KWARGS}
        env = self._make()
        obs_spaces, act_spaces = env.observation_space, env.action_space
        if not all(hasattr(sp, "n") for sp in act_spaces):
            raise KdccError(f"environment {env_spec.id!r}: every agent's action space must be discrete")
        self.n_agents = len(act_spaces)
        self.obs_sizes = [int(np.prod(sp.shape)) for sp in obs_spaces]
        self.action_sizes = [int(sp.n) for sp in act_spaces]
        self.obs_dim, self.n_actions = max(self.obs_sizes), max(self.action_sizes)
        self.state_dim = self.n_agents * self.obs_dim
        own = getattr(env.unwrapped, "max_steps", None) or (env.spec.max_episode_steps if env.spec else None)
        self.max_steps = int(env_spec.kwargs.get("time_limit") or own or 500)
        self.avail = full_avail(self.action_sizes)
        self.env, self.t = env, 0

    def _make(self) -> Any:
        try:
            return self._gym.make(self.id, disable_env_checker=True, **self.kwargs).unwrapped
        except Exception as e:  # noqa: BLE001 - gymnasium's errors for an unknown id or bad kwargs vary
            raise KdccError(f"environment {self.id!r}: gymnasium cannot make it ({type(e).__name__}: {e})") from None

    def _arrays(self, obs) -> tuple[np.ndarray, np.ndarray]:
        stacked = stack_padded(list(obs), self.obs_sizes, self.obs_dim)
        return stacked, stacked.reshape(-1).copy()

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.env, self.t = self._make(), 0
        obs, _ = self.env.reset(seed=int(seed))
        return self._arrays(obs)

    def step(self, actions: np.ndarray) -> StepResult:
        obs, rewards, terminated, truncated, _ = self.env.step([int(a) for a in actions[: self.n_agents]])
        self.t += 1
        done = bool(np.all(terminated)) or bool(np.all(truncated)) or self.t >= self.max_steps
        stacked, state = self._arrays(obs)
        return StepResult(stacked, state, float(np.sum(rewards)), done)
