"""A Python model of the fleet, to say exactly what a run with faults must return.

`ModelRobot` does with its requests what examples/fleet/robot.cc does (reset on an episode's
first step or a new episode, the same fault drills), calling the same role library through
TVM's Python runtime; `ModelFleet` is the simulator's team: fallback action for a robot with no
answer, and a fresh robot from a given tick on for a restart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdcc.ir.roles import role_of
from kdcc.ir.spec import MarlSpec
from kdcc.targets.tvm.runtime import HostStep


class ModelRobot:
    def __init__(self, bundle: Path, spec: MarlSpec, agent: int, *, ignore_every: int = 0, sleep_every: int = 0,
                 die_after: int | None = None):
        role = role_of(spec, agent)
        self.role, self.agent, self.obs_size = role, agent, spec.obs_size(agent)
        inputs = [np.zeros((1, role.obs_dim), np.float32), np.zeros(1, np.int64),
                  np.zeros((1, role.hidden_dim), np.float32)] + ([np.array([agent])] if role.shared else [])
        self.step_fn = HostStep(bundle / "lib" / "cpu" / f"{role.name}.so", inputs)
        self.ignore_every, self.sleep_every, self.die_after = ignore_every, sleep_every, die_after
        self.requests, self.episode = 0, None
        self._reset()

    def _reset(self) -> None:
        self.hidden = np.zeros((1, self.role.hidden_dim), np.float32)
        self.last = np.array([-1], np.int64)

    def request(self, episode: int, step: int, own_obs: np.ndarray) -> int | None:
        """The action this robot answers in time, or None (dead, dropped, or late)."""
        self.requests += 1
        if self.die_after is not None and self.requests > self.die_after:
            return None
        if self.ignore_every and self.requests % self.ignore_every == 0:
            return None  # dropped: the agent does not step
        if step == 0 or episode != self.episode:
            self._reset()
        self.episode = episode
        obs = np.zeros((1, self.role.obs_dim), np.float32)
        obs[0, : self.obs_size] = own_obs
        args = [obs, self.last, self.hidden] + ([np.array([self.agent])] if self.role.shared else [])
        action, _, self.hidden = self.step_fn(*args)
        self.last = action.astype(np.int64)
        late = self.sleep_every and self.requests % self.sleep_every == 0
        return None if late else int(action[0])  # late: the agent stepped, the simulator fell back


class ModelFleet:
    """The team Policy of `run_episodes`: robots[i] answers agent i; `restarts` maps a tick (counted
    over the whole run) to (agent, a fresh ModelRobot) that takes over from that tick on."""

    def __init__(self, spec: MarlSpec, robots: list[ModelRobot], fallback: int = 0,
                 restarts: dict[int, tuple[int, ModelRobot]] | None = None):
        self.spec, self.robots, self.fallback, self.restarts = spec, robots, fallback, restarts or {}
        self.episode, self.t, self.tick = -1, 0, 0

    def reset(self) -> None:
        self.episode, self.t = self.episode + 1, 0

    def step(self, obs, last_actions, state) -> np.ndarray:
        if self.tick in self.restarts:
            agent, robot = self.restarts[self.tick]
            self.robots[agent] = robot
        answers = [r.request(self.episode, self.t, obs[i, : self.spec.obs_size(i)]) for i, r in enumerate(self.robots)]
        self.t, self.tick = self.t + 1, self.tick + 1
        return np.array([self.fallback if a is None else a for a in answers], dtype=np.int64)
