"""Greedy team episodes in MPE: the one loop `eval` and `collect` share.

A policy is anything with `reset()` and `step(obs, last_actions, state) ->
actions`; it keeps its own recurrent state between steps. Episode i of a run
uses env seed `seed + i`, so two policies evaluated with the same seed face
exactly the same starting positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import TeamStep
from kdcc.marl.worlds.base import World

__all__ = ["Policy", "TorchPolicy", "RandomPolicy", "run_episodes", "EpisodeStats"]


class Policy(Protocol):
    def reset(self) -> None: ...

    def step(self, obs: np.ndarray, last_actions: np.ndarray, state: np.ndarray) -> np.ndarray: ...


class TorchPolicy:
    """A team step module run eagerly in torch; `trace` keeps the teacher's view of each step."""

    def __init__(self, spec: MarlSpec, team: torch.nn.Module):
        self.spec, self.team = spec, team
        self.hidden = torch.zeros(spec.n_agents, spec.agent.hidden_dim)
        self.last: dict[str, np.ndarray] = {}

    @classmethod
    def from_modules(cls, spec: MarlSpec, agent, mixer, avail: np.ndarray | None = None) -> "TorchPolicy":
        mask = None if avail is None else torch.from_numpy(avail)
        return cls(spec, TeamStep(spec, agent, mixer, mask).eval())

    def reset(self) -> None:
        self.hidden = torch.zeros(self.spec.n_agents, self.spec.agent.hidden_dim)

    @torch.no_grad()
    def step(self, obs, last_actions, state):
        hidden_in = self.hidden
        actions, q, self.hidden, q_tot = self.team(
            torch.from_numpy(obs), torch.from_numpy(last_actions), hidden_in, torch.from_numpy(state))
        self.last = {"hidden": hidden_in.numpy(), "q": q.numpy(), "q_tot": float(q_tot[0])}
        return actions.numpy()


class RandomPolicy:
    """Uniform over each agent's available actions, from its own seeded generator."""

    def __init__(self, avail: np.ndarray, seed: int):
        self.avail, self.rng = avail, np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def step(self, obs, last_actions, state):
        return np.array([self.rng.choice(np.flatnonzero(row)) for row in self.avail], dtype=np.int64)


@dataclass
class EpisodeStats:
    returns: np.ndarray  # team return per episode

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


StepHook = Callable[[int, int, dict], None]


def run_episodes(env: World, policy: Policy, episodes: int, seed: int, *, epsilon: float = 0.0,
                 on_step: StepHook | None = None, on_episode: Callable[[int], None] | None = None) -> EpisodeStats:
    """Run `episodes` episodes (env seeds seed, seed+1, ...); ε-random actions when epsilon > 0."""
    explore = np.random.default_rng(seed + 7919)
    returns = np.zeros(episodes)
    for ep in range(episodes):
        obs, state = env.reset(seed=seed + ep)
        policy.reset()
        last = np.full(env.n_agents, -1, dtype=np.int64)
        for t in range(env.max_steps):
            actions = np.asarray(policy.step(obs, last, state), dtype=np.int64)
            if epsilon > 0:
                random_actions = np.array([explore.choice(np.flatnonzero(r)) for r in env.avail])
                actions = np.where(explore.random(env.n_agents) < epsilon, random_actions, actions)
            result = env.step(actions)
            if on_step is not None:
                on_step(ep, t, {"obs": obs, "state": state, "last_actions": last, "actions": actions,
                                "reward": result.reward, "done": result.done or t == env.max_steps - 1})
            returns[ep] += result.reward
            obs, state, last = result.obs, result.state, actions
            if result.done:
                break
        if on_episode is not None:
            on_episode(ep)
    return EpisodeStats(returns)
