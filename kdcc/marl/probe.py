"""The fixed probe batch and fidelity against the teacher.

The probe is a few greedy teacher episodes in MPE (fixed seeds). A program is
replayed on the teacher's trajectory (same observations and last actions,
its own hidden state from zero), and compared step by step with the teacher:
max |ΔQ|, greedy-action agreement, max and mean |ΔQ_tot|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from kdcc.ir.spec import MarlSpec
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.marl.seeds import PROBE

__all__ = ["Probe", "make_probe", "replay", "fidelity"]

PROBE_SEED = PROBE.start  # the probe and certificate episodes own these seeds (kdcc.marl.scoring)


@dataclass(frozen=True)
class Probe:
    obs: np.ndarray  # [E, T, n, obs_dim]
    last_actions: np.ndarray  # [E, T, n]
    state: np.ndarray  # [E, T, S]
    q: np.ndarray  # teacher [E, T, n, A]
    q_tot: np.ndarray  # teacher [E, T]
    actions: np.ndarray  # teacher greedy [E, T, n]
    avail: np.ndarray | None = None  # [n, A] 1 = the agent has the action; ΔQ counts only those


def make_probe(teacher, episodes: int = 4, seed: int = PROBE_SEED) -> Probe:
    spec = teacher.spec
    env = make_env(spec.env)
    policy = TorchPolicy.from_modules(spec, teacher.agent, teacher.mixer, env.avail)
    steps: list[dict] = []

    def record(ep, t, step):
        steps.append({**step, **policy.last})

    run_episodes(env, policy, episodes, seed, on_step=record)
    T = len(steps) // episodes

    def stack(key, dtype):
        return np.stack([s[key] for s in steps]).astype(dtype).reshape(episodes, T, *np.shape(steps[0][key]))

    return Probe(stack("obs", np.float32), stack("last_actions", np.int64), stack("state", np.float32),
                 stack("q", np.float32), stack("q_tot", np.float32), stack("actions", np.int64), env.avail.copy())


@torch.no_grad()
def replay(team: nn.Module, spec: MarlSpec, probe: Probe) -> dict[str, np.ndarray]:
    """Run a team-step module along the probe's trajectories; returns actions, q, q_tot arrays."""
    E, T = probe.obs.shape[:2]
    out = {"actions": np.zeros(probe.actions.shape, np.int64), "q": np.zeros(probe.q.shape[:3] + (spec.n_actions,),
                                                                                np.float32),
           "q_tot": np.zeros((E, T), np.float32)}
    for e in range(E):
        hidden = torch.zeros(spec.n_agents, spec.agent.hidden_dim)
        for t in range(T):
            a, q, hidden, q_tot = team(torch.from_numpy(probe.obs[e, t]), torch.from_numpy(probe.last_actions[e, t]),
                                       hidden, torch.from_numpy(probe.state[e, t]))
            out["actions"][e, t], out["q"][e, t], out["q_tot"][e, t] = a.numpy(), q.numpy(), float(q_tot[0])
    return out


def fidelity(outputs: dict[str, np.ndarray], probe: Probe) -> dict[str, float]:
    dq = np.abs(outputs["q"] - probe.q)
    if probe.avail is not None:
        dq = dq * probe.avail
    dtot = np.abs(outputs["q_tot"] - probe.q_tot)
    return {
        "max_abs_dq": float(dq.max()),
        "action_agreement": float((outputs["actions"] == probe.actions).mean()),
        "max_abs_dq_tot": float(dtot.max()),
        "mean_abs_dq_tot": float(dtot.mean()),
    }
