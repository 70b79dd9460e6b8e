"""Certified ε of every agent step on the states the policy itself visits.

Each robot is run as it runs deployed (`AgentPolicy`: its own observation, its own
hidden state and last action) through fixed MPE episodes (env seeds PROBE_SEED,
PROBE_SEED+1, ...), and every step it takes is recorded: (observation, last action,
hidden state in, agent index). Then, per step, `kdcc.ir.bounds.certified_eps` gives
the largest ε such that no observation within ε·s of the visited one (L∞, per
feature, s the scale) can change the step's greedy action — the hidden state and last
action held at their visited values. Only the agent's own observation features move.

The scale s: `std` is each agent's observation std per feature on the *teacher's*
visited states (so a teacher and its student are measured on one scale; a feature
that never varied there does not move), `none` is 1 on every feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.ir.agent_step import agent_step
from kdcc.ir.bounds import METHODS, certified_eps
from kdcc.ir.roles import role_of, team_roles
from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import agent_inputs
from kdcc.marl.agents import AgentPolicy, DecentralisedPolicy
from kdcc.marl.worlds import make_env
from kdcc.marl.probe import PROBE_SEED
from kdcc.marl.rollout import run_episodes

__all__ = ["VisitedSteps", "visited_steps", "observation_scale", "certify_roles", "SCALES", "check_certify_options"]

SCALES = ("std", "none")


def check_certify_options(episodes: int, method: str, scale: str) -> None:
    """One line for a bad --episodes, --method or --eps-scale (per-step and episode certificates alike)."""
    if episodes <= 0:
        raise KdccError(f"--episodes must be positive, got {episodes}")
    if method not in METHODS:
        raise KdccError(f"--method {method}: not one of {', '.join(METHODS)}")
    if scale not in SCALES:
        raise KdccError(f"--eps-scale {scale}: not one of {', '.join(SCALES)}")


@dataclass(frozen=True)
class VisitedSteps:
    """Every agent step of the episodes, in order: obs [N, obs_dim] (padded), last_action [N], hidden [N, H]
    (padded to the spec's hidden size), agent [N]; and the team return of each episode (the policy's score on
    the same states)."""

    obs: np.ndarray
    last_action: np.ndarray
    hidden: np.ndarray
    agent: np.ndarray
    returns: np.ndarray


class _Recorder(AgentPolicy):
    def __init__(self, spec, agent, step, log):
        super().__init__(spec, agent, step)
        self.log, self.padded_obs = log, spec.obs_dim

    def act(self, own_obs) -> int:
        obs = np.zeros(self.padded_obs, np.float32)
        obs[: self.obs_size] = np.asarray(own_obs, dtype=np.float32)[: self.obs_size]
        self.log.append((obs, int(self.last_action[0]), self.hidden[0].numpy().copy(), self.agent))
        return super().act(own_obs)


def visited_steps(spec: MarlSpec, networks: dict[str, nn.Module], episodes: int,
                  seed: int = PROBE_SEED) -> VisitedSteps:
    """Run each agent's role network as its own robot for `episodes` episodes; every step it takes."""
    log: list = []
    steps = {r.name: agent_step(spec, r, networks[r.name]).eval() for r in team_roles(spec)}
    team = DecentralisedPolicy([_Recorder(spec, i, steps[role_of(spec, i).name], log) for i in range(spec.n_agents)])
    stats = run_episodes(make_env(spec.env), team, episodes, seed)
    H = spec.agent.hidden_dim
    hidden = np.stack([np.pad(h, (0, H - len(h))) for _, _, h, _ in log])
    return VisitedSteps(np.stack([o for o, *_ in log]), np.array([a for _, a, _, _ in log], np.int64), hidden,
                        np.array([i for *_, i in log], np.int64), stats.returns)


def observation_scale(spec: MarlSpec, visited: VisitedSteps, scale: str) -> np.ndarray:
    """s [n_agents, obs_dim]: per agent, per feature (module docstring); zero on padding."""
    if scale not in SCALES:
        raise KdccError(f"--eps-scale {scale}: not one of {', '.join(SCALES)}")
    s = np.zeros((spec.n_agents, spec.obs_dim), np.float64)
    for i in range(spec.n_agents):
        k = spec.obs_size(i)
        s[i, :k] = visited.obs[visited.agent == i, :k].std(0) if scale == "std" else 1.0
    return s


def certify_roles(spec: MarlSpec, networks: dict[str, nn.Module], visited: VisitedSteps, scale: np.ndarray,
                  method: str = "crown") -> dict[str, np.ndarray]:
    """Certified ε of every visited step, by role (steps in visiting order)."""
    if method not in METHODS:
        raise KdccError(f"--method {method}: not one of {', '.join(METHODS)}")
    avail = np.asarray(spec.avail(), bool)
    out = {}
    for role in team_roles(spec):
        rows = np.flatnonzero(np.isin(visited.agent, role.agents))
        agent = visited.agent[rows]
        obs = torch.from_numpy(visited.obs[rows, : role.obs_dim])
        last = torch.from_numpy(visited.last_action[rows])
        onehot = torch.from_numpy(agent).unsqueeze(-1) == torch.arange(spec.n_agents)
        x = agent_inputs(obs, last, torch.arange(role.n_actions) if spec.obs_last_action else None,
                         onehot.float() if role.shared and spec.obs_agent_id else None)
        radius = torch.zeros_like(x, dtype=torch.float64)
        radius[:, : role.obs_dim] = torch.from_numpy(scale[agent, : role.obs_dim])
        hidden = torch.from_numpy(visited.hidden[rows, : role.hidden_dim])
        acts = torch.from_numpy(avail[agent, : role.n_actions])
        out[role.name] = certified_eps(networks[role.name], x, hidden, radius, acts, method).numpy()
    return out
