"""Episode certificates: can observation noise within ε, at every step, change any of a team's actions?

A policy (spec + each role's network: a teacher's shared agent, a student's shared or
per-agent networks — anything `team_roles` names) plays fixed episodes unperturbed, each
robot as it runs deployed (`AgentPolicy`), on env seeds from `seeds.PROBE`. Then, per
episode, every agent's box is propagated through its recurrence
(`kdcc.ir.bounds.episode`): the observation within ε·s of the visited one (s: the
per-feature scale of kdcc.marl.certify, the teacher's observation std), the hidden state
in the box carried from the step before. The episode is certified at ε when every
agent's margins over its other available actions stay > 0 at every step; then, by the
soundness argument in kdcc.ir.bounds.episode, every perturbation within the boxes plays
the unperturbed episode exactly. Agents' boxes do not interact (the world follows the
unperturbed trajectory while the certificate holds), so each role's agents run as one
batch. Perturbation models:

    all       every agent's observation moves;
    agent:I   only agent I's observation moves; the others see theirs exactly (their
              boxes are points: they need only a margin > 0, which fails only on a tie).

Reported per policy: for each ε of a grid, the fraction of episodes certified and, for
each other one, the first (step, agent) whose certificate is lost; each episode's
certified radius (the largest ε verified: of the grid's, or with `bisect` by bisection as
kdcc.ir.bounds.certify's `largest_verified`, to 10%); from those, the largest ε at which
50% and 90% of the episodes are certified (0: below the grid). An episode verified at ε
is certified at every smaller ε (its boxes contain theirs), so an episode counts as
certified at ε when its radius is ≥ ε: the fractions never grow with ε even where
CROWN's bound is not monotone. Cost: CROWN on [x ‖ h] carries linear bounds of width
d + H per node, so a 256-wide GRU takes about a second per step for 30 agent-episodes
(two CPU cores) and each ε a whole episode of them; bisection, ten or so such passes, is
opt-in. A certified episode's return
is exactly its unperturbed return; an uncertified one has no return bound (MPE's
rewards are distances between positions the certificate no longer speaks about, and no
sound per-step reward bound exists for them), so no team-return lower bound is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.ir.agent_step import agent_step
from kdcc.ir.bounds.certify import largest_verified
from kdcc.ir.bounds.episode import episode_first_loss
from kdcc.ir.roles import role_of, team_roles
from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import agent_inputs
from kdcc.marl.agents import AgentPolicy, DecentralisedPolicy
from kdcc.marl.certify import check_certify_options, observation_scale, visited_steps
from kdcc.marl.rollout import run_episodes
from kdcc.marl.seeds import PROBE
from kdcc.marl.worlds import make_env

__all__ = ["Played", "EpisodeCertifyResult", "team_policy", "play", "parse_perturb", "parse_eps", "first_losses",
           "certify_episodes", "certify_policies", "QUANTILES"]

QUANTILES = (0.5, 0.9)
REL_TOL = 0.1  # the radius bisection's relative tolerance: each try is a whole episode of bounds


@dataclass(frozen=True)
class Played:
    """Fixed unperturbed episodes (arrays padded past an episode's end): obs [E, T, n, obs_dim], last_actions and
    actions [E, T, n], steps [E] (each episode's length), returns [E] (team returns), seeds [E]."""

    obs: np.ndarray
    last_actions: np.ndarray
    actions: np.ndarray
    steps: np.ndarray
    returns: np.ndarray
    seeds: np.ndarray


def team_policy(spec: MarlSpec, networks: dict[str, nn.Module]) -> DecentralisedPolicy:
    """The team as deployed: one `AgentPolicy` per agent running its role's network on its own observation."""
    steps = {r.name: agent_step(spec, r, networks[r.name]).eval() for r in team_roles(spec)}
    return DecentralisedPolicy([AgentPolicy(spec, i, steps[role_of(spec, i).name]) for i in range(spec.n_agents)])


def play(spec: MarlSpec, networks: dict[str, nn.Module], episodes: int, seed: int | None = None) -> Played:
    """`episodes` greedy episodes from env seed `seed` (default: the first PROBE seed)."""
    seed = PROBE.first(episodes) if seed is None else seed
    env = make_env(spec.env)
    E, T, n = episodes, env.max_steps, spec.n_agents
    obs = np.zeros((E, T, n, spec.obs_dim), np.float32)
    last, actions = np.zeros((E, T, n), np.int64), np.zeros((E, T, n), np.int64)
    steps = np.zeros(E, np.int64)

    def record(ep: int, t: int, step: dict) -> None:
        obs[ep, t, :, : step["obs"].shape[1]] = step["obs"]
        last[ep, t], actions[ep, t], steps[ep] = step["last_actions"], step["actions"], t + 1

    stats = run_episodes(env, team_policy(spec, networks), episodes, seed, on_step=record)
    return Played(obs, last, actions, steps, stats.returns, seed + np.arange(E))


def parse_perturb(text: str, n_agents: int) -> int | None:
    """`all` -> None; `agent:I` -> I (an agent of the team)."""
    if text == "all":
        return None
    kind, _, index = text.partition(":")
    if kind == "agent" and index.isdigit() and int(index) < n_agents:
        return int(index)
    raise KdccError(f"--perturb {text}: not 'all' or 'agent:I' with I an agent index 0..{n_agents - 1}")


def parse_eps(text: str) -> tuple[float, ...]:
    """`0.01,0.05` -> (0.01, 0.05): radii ≥ 0, sorted."""
    try:
        grid = tuple(sorted(float(v) for v in text.split(",")))
    except ValueError:
        raise KdccError(f"--eps {text}: not a comma-separated list of numbers") from None
    if not all(math.isfinite(e) and e >= 0 for e in grid):
        raise KdccError(f"--eps {text}: every radius must be a finite number ≥ 0")
    return grid


def first_losses(spec: MarlSpec, networks: dict[str, nn.Module], played: Played, scale: np.ndarray,
                 eps: np.ndarray, perturbed: int | None, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(step [E], agent [E]): where each episode's certificate at its ε (eps [E]) is first lost (the lowest agent
    of the first step); step == the episode's length where it never is. `perturbed`: None, every agent's
    observation moves; i, only agent i's. `scale` [n, obs_dim]: s per agent and feature."""
    E, T, n = played.actions.shape
    lost = np.zeros((E, n), np.int64)
    avail = torch.tensor(spec.avail()) > 0
    for role in team_roles(spec):
        agents, k, od = list(role.agents), len(role.agents), role.obs_dim

        def rows(a: np.ndarray) -> torch.Tensor:  # [E, T, k, ...] -> [T, E·k, ...], episode-major rows
            t = torch.from_numpy(np.ascontiguousarray(a[:, :, agents]))
            return t.transpose(0, 1).reshape(T, E * k, *a.shape[3:])

        agent = torch.tensor(agents).repeat(E)
        onehot = (agent.unsqueeze(-1) == torch.arange(n)).float().expand(T, -1, -1)
        x = agent_inputs(rows(played.obs[..., :od]), rows(played.last_actions),
                         torch.arange(role.n_actions) if spec.obs_last_action else None,
                         onehot if role.shared and spec.obs_agent_id else None)
        moving = scale[agents, :od] * np.array([[perturbed is None or j == perturbed] for j in agents])
        radius = torch.zeros(x.shape, dtype=torch.float64)
        radius[..., :od] = torch.from_numpy(np.asarray(eps, np.float64).repeat(k)[:, None] * np.tile(moving, (E, 1)))
        first = episode_first_loss(networks[role.name], x, radius, rows(played.actions),
                                   avail[agent, : role.n_actions], torch.from_numpy(played.steps).repeat_interleave(k),
                                   method)
        lost[:, agents] = first.numpy().reshape(E, k)
    return lost.min(1), lost.argmin(1)


def _largest_eps(radius: np.ndarray, q: float) -> float:
    """The largest ε at which at least a fraction q of the episodes are certified (radius ≥ ε)."""
    return float(np.sort(radius)[::-1][math.ceil(q * len(radius)) - 1])


def certify_episodes(spec: MarlSpec, networks: dict[str, nn.Module], played: Played, scale: np.ndarray,
                     eps_grid: Sequence[float], perturbed: int | None, method: str = "crown",
                     bisect: bool = False) -> dict[str, Any]:
    """One policy's episode certificates (module docstring), as plain JSON."""
    E = len(played.steps)

    def lost_at(eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return first_losses(spec, networks, played, scale, eps, perturbed, method)

    direct = {e: lost_at(np.full(E, e)) for e in eps_grid}
    radius = np.zeros(E)
    if bisect:
        radius = largest_verified(lambda eps: torch.from_numpy(lost_at(eps.numpy())[0] == played.steps), E,
                                  rel_tol=REL_TOL).numpy()
    for e, (step, _) in direct.items():  # every ε verified counts (the closure above)
        radius = np.where(step == played.steps, np.maximum(radius, e), radius)
    at = []
    for e in eps_grid:
        ok = radius >= e
        step, agent = direct[e]
        at.append({"eps": e, "certified": round(float(ok.mean()), 4), "certified_episodes": int(ok.sum()),
                   "certified_return": round(float(played.returns[ok].mean()), 4) if ok.any() else None,
                   "lost": [{"seed": int(played.seeds[i]), "step": int(step[i]), "agent": int(agent[i])}
                            for i in np.flatnonzero(~ok)]})
    return {"episodes": E, "return_mean": round(float(played.returns.mean()), 4),
            "returns": [round(float(r), 4) for r in played.returns], "radius": [round(float(r), 6) for r in radius],
            **{f"eps_{round(q * 100)}": round(_largest_eps(radius, q), 6) for q in QUANTILES}, "at": at}


@dataclass(frozen=True)
class EpisodeCertifyResult:
    method: str
    scale: str
    perturb: str
    episodes: int
    seeds: list[int]
    bisect: bool
    policies: dict[str, dict[str, Any]]  # label -> certify_episodes

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "eps_scale": self.scale, "perturb": self.perturb, "episodes": self.episodes,
                "seeds": self.seeds, "bisect": self.bisect, "policies": self.policies}


def certify_policies(policies: Sequence[tuple[str, MarlSpec, dict[str, nn.Module]]], episodes: int,
                     eps_grid: Sequence[float], perturb: str = "all", scale: str = "std", method: str = "crown",
                     bisect: bool = False) -> EpisodeCertifyResult:
    """Episode certificates of each (label, spec, networks), on the same seeds and one scale: the first
    policy's (put the teacher first)."""
    check_certify_options(episodes, method, scale)
    if len({spec.env.id for _, spec, _ in policies}) > 1:
        raise KdccError("--teacher: the policies play different scenarios")
    _, ref_spec, ref_networks = policies[0]
    perturbed = parse_perturb(perturb, ref_spec.n_agents)
    seed = PROBE.first(episodes)
    s_unit = observation_scale(ref_spec, visited_steps(ref_spec, ref_networks, episodes, seed), scale)
    out = {label: certify_episodes(spec, networks, play(spec, networks, episodes, seed), s_unit, eps_grid,
                                   perturbed, method, bisect)
           for label, spec, networks in policies}
    return EpisodeCertifyResult(method, scale, perturb, episodes, PROBE.span(episodes), bisect, out)
