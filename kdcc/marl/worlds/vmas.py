"""VMAS tasks (the vectorised robot simulator behind BenchMARL) as a kdcc world, discrete actions.

The spec's `env.id` is `vmas:TASK` (`vmas:navigation`, `vmas:balance`, …);
`env.kwargs` go to `vmas.make_env` (e.g. `n_agents`), except `max_steps`, the
episode length (default 100; VMAS's own default never ends an episode). kdcc's
student steps return discrete actions (argmax), so the task is made with
`continuous_actions=False` (VMAS's 9-way or 5-way discretisation of the force);
continuous actions are not supported yet. VMAS has no global state here: the
state is the agents' observations concatenated. VMAS seeds through the global
torch, numpy and `random` generators (`env.seed`); the adapter saves and restores
them around each reset, so playing a VMAS episode does not move the compile's own
random streams. One environment is stepped at a time (`num_envs=1`).
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from kdcc.core.errors import KdccError
from kdcc.ir.spec import EnvSpec
from kdcc.marl.worlds.base import StepResult, full_avail, stack_padded

__all__ = ["PREFIX", "is_vmas_world", "VmasTeam"]

PREFIX = "vmas:"
DEFAULT_MAX_STEPS = 100


def is_vmas_world(env_id: str) -> bool:
    return env_id.startswith(PREFIX)


@contextmanager
def _own_rng():
    """The global generators VMAS seeds, restored afterwards."""
    state = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        yield
    finally:
        torch.random.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


class VmasTeam:
    def __init__(self, env_spec: EnvSpec):
        try:
            import vmas
        except ImportError as e:
            raise KdccError(f"environment {env_spec.id!r} needs the package 'vmas' (pip install 'kdcc[worlds]'): "
                            f"{e}") from None
        self.task = env_spec.id[len(PREFIX):]
        kwargs = {k: v for k, v in env_spec.kwargs.items() if k != "max_steps"}
        self.max_steps = int(env_spec.kwargs.get("max_steps", DEFAULT_MAX_STEPS))
        try:
            with _own_rng():
                self.env = vmas.make_env(self.task, num_envs=1, device="cpu", continuous_actions=False, seed=0,
                                         max_steps=self.max_steps, **kwargs)
        except Exception as e:  # noqa: BLE001 - VMAS raises assorted errors for an unknown task or kwargs
            raise KdccError(f"environment {env_spec.id!r}: VMAS cannot make it ({type(e).__name__}: {e})") from None
        self.n_agents = self.env.n_agents
        self.obs_sizes = [int(np.prod(sp.shape)) for sp in self.env.observation_space]
        self.action_sizes = [int(sp.n) for sp in self.env.action_space]
        self.obs_dim, self.n_actions = max(self.obs_sizes), max(self.action_sizes)
        self.state_dim = self.n_agents * self.obs_dim
        self.avail = full_avail(self.action_sizes)

    def _arrays(self, obs) -> tuple[np.ndarray, np.ndarray]:
        stacked = stack_padded([o[0].numpy() for o in obs], self.obs_sizes, self.obs_dim)
        return stacked, stacked.reshape(-1).copy()

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        with _own_rng():
            self.env.seed(int(seed))
            obs = self.env.reset()
        return self._arrays(obs)

    def step(self, actions: np.ndarray) -> StepResult:
        act = [torch.tensor([int(a)]) for a in actions[: self.n_agents]]
        with _own_rng(), torch.no_grad():
            obs, rewards, done, _ = self.env.step(act)
        stacked, state = self._arrays(obs)
        return StepResult(stacked, state, float(sum(float(r[0]) for r in rewards)), bool(done[0]))
