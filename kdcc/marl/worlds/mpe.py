"""MPE scenarios from `mpe2`, and any PettingZoo parallel environment, as a kdcc world (kdcc.marl.worlds).

An mpe2 scenario is named by its module (`simple_spread_v3`); another PettingZoo
parallel environment by its entry point, `pettingzoo:PACKAGE.MODULE:FUNCTION`
(e.g. `pettingzoo:mpe2.simple_reference_v3:parallel_env`), its keyword
arguments in the spec's `env.kwargs`. Every agent's action space must be
discrete. The state is the environment's `state()` where it has one, else
(`EnvSpec.state == "padded-obs"`, or no `state()`) the padded observations
concatenated, as EPyMARL's PettingZoo wrapper builds it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.ir.spec import EnvSpec
from kdcc.marl.worlds.base import StepResult, full_avail, stack_padded

__all__ = ["SCENARIOS", "ENTRY_PREFIX", "TeamEnv", "is_parallel_world", "make_parallel"]

# Cooperative scenarios of mpe2 kdcc supports, with their default kwargs.
SCENARIOS: dict[str, dict] = {
    "simple_spread_v3": {"N": 3, "max_cycles": 25},
    "simple_reference_v3": {"max_cycles": 25},
    "simple_speaker_listener_v4": {"max_cycles": 25},
}
ENTRY_PREFIX = "pettingzoo:"


def is_parallel_world(env_id: str) -> bool:
    return env_id in SCENARIOS or env_id.startswith(ENTRY_PREFIX)


def _constructor(env_spec: EnvSpec) -> tuple[Callable[..., Any], dict[str, Any]]:
    if env_spec.id in SCENARIOS:
        module = importlib.import_module(f"mpe2.{env_spec.id}")
        return module.parallel_env, {**SCENARIOS[env_spec.id], **env_spec.kwargs, "continuous_actions": False}
    target = env_spec.id[len(ENTRY_PREFIX):]
    module_name, _, function = target.partition(":")
    if not module_name or not function:
        raise KdccError(f"environment {env_spec.id!r}: a PettingZoo entry point is pettingzoo:MODULE:FUNCTION")
    try:
        fn = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as e:
        raise KdccError(f"environment {env_spec.id!r}: cannot load {module_name}.{function} ({e})") from None
    return fn, dict(env_spec.kwargs)


class TeamEnv:
    """A cooperative PettingZoo `parallel_env` (an mpe2 scenario, or any entry point) seen as one team."""

    def __init__(self, env_spec: EnvSpec):
        make, kwargs = _constructor(env_spec)
        self.env = make(**kwargs)
        self.env.reset(seed=0)
        self.agents = list(self.env.possible_agents)
        self.n_agents = len(self.agents)
        self.obs_sizes = [int(np.prod(self.env.observation_space(a).shape)) for a in self.agents]
        spaces = [self.env.action_space(a) for a in self.agents]
        if not all(hasattr(sp, "n") for sp in spaces):
            raise KdccError(f"environment {env_spec.id!r}: every agent's action space must be discrete "
                            f"(got {', '.join(type(sp).__name__ for sp in spaces)})")
        self.action_sizes = [int(sp.n) for sp in spaces]
        self.obs_dim = max(self.obs_sizes)
        self.n_actions = max(self.action_sizes)
        self.state_layout = env_spec.state if hasattr(self.env, "state") else "padded-obs"
        self.state_dim = (self.n_agents * self.obs_dim if self.state_layout == "padded-obs"
                          else int(np.asarray(self.env.state()).size))
        self.max_steps = int(kwargs.get("max_cycles", kwargs.get("max_steps", 25)))
        self.avail = full_avail(self.action_sizes)

    def _stack(self, obs: dict) -> np.ndarray:
        return stack_padded([obs.get(a) for a in self.agents], self.obs_sizes, self.obs_dim)

    def _state(self, stacked: np.ndarray) -> np.ndarray:
        if not self.env.agents:
            return np.zeros(self.state_dim, np.float32)
        if self.state_layout == "padded-obs":
            return stacked.reshape(-1).copy()
        return np.asarray(self.env.state(), dtype=np.float32).reshape(-1)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        obs, _ = self.env.reset(seed=int(seed))
        stacked = self._stack(obs)
        return stacked, self._state(stacked)

    def step(self, actions: np.ndarray) -> StepResult:
        act = {a: int(actions[i]) for i, a in enumerate(self.agents) if a in self.env.agents}
        obs, rew, term, trunc, _ = self.env.step(act)
        done = (not self.env.agents) or all(term.values()) or all(trunc.values())
        stacked = self._stack(obs)
        return StepResult(stacked, self._state(stacked), float(sum(rew.values())), bool(done))


def make_parallel(env_spec: EnvSpec) -> TeamEnv:
    return TeamEnv(env_spec)
