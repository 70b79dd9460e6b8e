"""Calibration samples: the inputs each compiled step sees on the dataset, for int8 scales and precision checks.

The dataset holds teacher trajectories (obs, last actions, state per step). Each step graph is run
in fp32 torch along the first `CALIBRATION_STEPS` of them, carrying its own hidden state (reset
where an episode starts), and every input it was given is kept as a numpy tuple:

    "policy"   the team step: (obs, last_actions, hidden, state)
    <role>     each role's agent step, for every agent of the role: (obs, last_action, hidden[, agent_id])
    "monitor"  the team monitor: (chosen Q of the team step's greedy actions, state)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdcc.ir.roles import team_roles

__all__ = ["CALIBRATION_STEPS", "calibration_samples"]

CALIBRATION_STEPS = 200


def _starts(episode_end: np.ndarray) -> np.ndarray:
    return np.concatenate([[True], episode_end[:-1].astype(bool)])


@torch.no_grad()
def _team(team: nn.Module, arrays: dict, n: int, hidden_dim: int):
    samples, chosen = [], []
    hidden = None
    for t, start in enumerate(_starts(arrays["episode_end"][:n])):
        if start:
            hidden = np.zeros((arrays["obs"].shape[1], hidden_dim), np.float32)
        inputs = (arrays["obs"][t].astype(np.float32), arrays["last_actions"][t].astype(np.int64), hidden,
                  arrays["state"][t].astype(np.float32))
        actions, q, new_hidden, _ = team(*(torch.from_numpy(a) for a in inputs))
        samples.append(inputs)
        chosen.append((q.gather(1, actions.view(-1, 1)).view(1, -1).numpy(), inputs[3]))
        hidden = new_hidden.numpy()
    return samples, chosen


@torch.no_grad()
def _agents(step: nn.Module, role, arrays: dict, n: int) -> list[tuple]:
    samples = []
    for i in role.agents:
        hidden = None
        for t, start in enumerate(_starts(arrays["episode_end"][:n])):
            if start:
                hidden = np.zeros((1, role.hidden_dim), np.float32)
            inputs = (arrays["obs"][t, i:i + 1, :role.obs_dim].astype(np.float32),
                      arrays["last_actions"][t, i:i + 1].astype(np.int64), hidden)
            inputs += (np.array([i], np.int64),) if role.shared else ()
            samples.append(inputs)
            hidden = step(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs))[2].numpy()
    return samples


def calibration_samples(program, dataset, agents: dict[str, nn.Module], with_monitor: bool = True,
                        steps: int = CALIBRATION_STEPS) -> dict[str, list[tuple]]:
    """Inputs of every step graph on the first `steps` dataset steps (module docstring)."""
    arrays, n = dataset.arrays, min(steps, len(dataset))
    team, chosen = _team(program.team_module().eval(), arrays, n, program.spec.agent.hidden_dim)
    out = {"policy": team}
    for role in team_roles(program.spec):
        if role.name in agents:
            out[role.name] = _agents(agents[role.name], role, arrays, n)
    if with_monitor:
        out["monitor"] = chosen
    return out
