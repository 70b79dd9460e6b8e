"""The one environment interface kdcc plays: a cooperative team seen as fixed-size arrays.

Collect, eval, `--keep`, certify, the fleet simulator and `--decentralised` see
only this protocol, so nothing downstream knows a world by name:

    reset(seed)      -> (obs [n, obs_dim] float32, state [state_dim] float32)
    step(actions)    -> StepResult(obs, state, reward: the team's, done)
    avail            [n, n_actions] float32: 1 where agent i has action a
    n_agents, obs_dim, n_actions, state_dim, max_steps, obs_sizes, action_sizes

Agents with smaller observations or action sets are zero-padded to the widest,
and `avail` masks the actions an agent lacks. The team reward of a step is the
sum of the agents' rewards (an episode's team return is summed over steps and
agents, as EPyMARL reports it with `reward_scalarisation: sum`). Episode i of
a run uses env seed `seed + i`; a world must give the same episode for the same
seed, whatever it played before (an adapter rebuilds its environment where the
library keeps state across resets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = ["StepResult", "World", "stack_padded", "full_avail"]


@dataclass
class StepResult:
    obs: np.ndarray  # [n, obs_dim] float32
    state: np.ndarray  # [state_dim] float32
    reward: float  # team reward of this step
    done: bool


class World(Protocol):
    n_agents: int
    obs_dim: int
    n_actions: int
    state_dim: int
    max_steps: int
    obs_sizes: list[int]
    action_sizes: list[int]
    avail: np.ndarray

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]: ...

    def step(self, actions: np.ndarray) -> StepResult: ...


def stack_padded(per_agent: Sequence[np.ndarray | None], obs_sizes: Sequence[int], obs_dim: int) -> np.ndarray:
    """[n, obs_dim] float32: each agent's observation, zero-padded (a missing one: all zeros)."""
    out = np.zeros((len(obs_sizes), obs_dim), dtype=np.float32)
    for i, o in enumerate(per_agent):
        if o is not None:
            out[i, : obs_sizes[i]] = np.asarray(o, dtype=np.float32).reshape(-1)
    return out


def full_avail(action_sizes: Sequence[int]) -> np.ndarray:
    """[n, max action size]: 1 for each action an agent has."""
    avail = np.zeros((len(action_sizes), max(action_sizes)), dtype=np.float32)
    for i, k in enumerate(action_sizes):
        avail[i, :k] = 1.0
    return avail
