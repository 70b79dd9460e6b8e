"""MPE scenarios from `mpe2` as a team environment with fixed-size arrays.

Every step returns the observations of all agents stacked [n, obs_dim], the
global state, and the team reward: the sum of all agents' rewards (so an
episode's team return is summed over steps and agents, as EPyMARL reports it).
Agents with smaller observations or action sets (speaker–listener) are
zero-padded to the widest, and `avail` masks the actions an agent lacks. The
state is mpe2's `env.state()`, or (`EnvSpec.state == "padded-obs"`) the padded
observations concatenated, as EPyMARL's PettingZoo wrapper builds it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.ir.spec import EnvSpec, MarlSpec

__all__ = ["SCENARIOS", "TeamEnv", "make_env", "env_dims", "with_agent_sizes"]

# Cooperative scenarios of mpe2 kdcc supports, with their default kwargs.
SCENARIOS: dict[str, dict] = {
    "simple_spread_v3": {"N": 3, "max_cycles": 25},
    "simple_reference_v3": {"max_cycles": 25},
    "simple_speaker_listener_v4": {"max_cycles": 25},
}


@dataclass
class StepResult:
    obs: np.ndarray  # [n, obs_dim] float32
    state: np.ndarray  # [state_dim] float32
    reward: float  # team reward of this step
    done: bool


class TeamEnv:
    """A cooperative mpe2 `parallel_env` seen as one team with padded arrays."""

    def __init__(self, env_spec: EnvSpec):
        if env_spec.id not in SCENARIOS:
            known = ", ".join(sorted(SCENARIOS))
            raise KdccError(f"unknown environment {env_spec.id!r} (known: {known})")
        module = importlib.import_module(f"mpe2.{env_spec.id}")
        kwargs = {**SCENARIOS[env_spec.id], **env_spec.kwargs, "continuous_actions": False}
        self.env = module.parallel_env(**kwargs)
        self.env.reset(seed=0)
        self.agents = list(self.env.possible_agents)
        self.n_agents = len(self.agents)
        self.obs_sizes = [self.env.observation_space(a).shape[0] for a in self.agents]
        self.action_sizes = [int(self.env.action_space(a).n) for a in self.agents]
        self.obs_dim = max(self.obs_sizes)
        self.n_actions = max(self.action_sizes)
        self.state_layout = env_spec.state
        self.state_dim = (self.n_agents * self.obs_dim if self.state_layout == "padded-obs"
                          else int(self.env.state().shape[0]))
        self.max_steps = int(kwargs.get("max_cycles", 25))
        self.avail = np.zeros((self.n_agents, self.n_actions), dtype=np.float32)
        for i, k in enumerate(self.action_sizes):
            self.avail[i, :k] = 1.0

    def _stack(self, obs: dict) -> np.ndarray:
        out = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)
        for i, a in enumerate(self.agents):
            if a in obs:
                out[i, : self.obs_sizes[i]] = obs[a]
        return out

    def _state(self, stacked: np.ndarray) -> np.ndarray:
        if not self.env.agents:
            return np.zeros(self.state_dim, np.float32)
        if self.state_layout == "padded-obs":
            return stacked.reshape(-1).copy()
        return self.env.state().astype(np.float32)

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


def make_env(env_spec: EnvSpec) -> TeamEnv:
    return TeamEnv(env_spec)


def env_dims(env_spec: EnvSpec) -> dict[str, int]:
    """n_agents, obs_dim, state_dim, n_actions of a scenario (used to fill in specs)."""
    env = TeamEnv(env_spec)
    return {"n_agents": env.n_agents, "obs_dim": env.obs_dim, "state_dim": env.state_dim,
            "n_actions": env.n_actions}


def with_agent_sizes(spec: MarlSpec) -> MarlSpec:
    """`spec` with its agents' own observation and action sizes filled in from the scenario, where they
    differ (speaker–listener); a homogeneous team's spec comes back as it is. Sizes a spec already
    states must be the scenario's (KdccError otherwise)."""
    env = TeamEnv(spec.env)
    if spec.obs_sizes or spec.action_sizes:
        for name, stated, real in (("obs_sizes", spec.obs_sizes, env.obs_sizes),
                                   ("action_sizes", spec.action_sizes, env.action_sizes)):
            if stated and list(stated) != list(real):
                raise KdccError(f"spec.{name} {list(stated)} but {spec.env.id} has {list(real)}")
        return spec
    if len(set(env.obs_sizes)) == 1 and len(set(env.action_sizes)) == 1:
        return spec
    if env.n_agents != spec.n_agents or env.obs_dim > spec.obs_dim or env.n_actions > spec.n_actions:
        return spec  # a mismatch the loaders report with the file's name
    return replace(spec, obs_sizes=tuple(env.obs_sizes), action_sizes=tuple(env.action_sizes))
