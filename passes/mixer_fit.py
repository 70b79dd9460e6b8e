"""The regression behind approximate-mixer: a candidate mixer fitted to the teacher mixer's Q_tot.

Rows are the dataset's states, each twice: at the teacher's per-agent Q of its
greedy actions and of uniformly random actions, so the fit sees Q_tot off the
greedy point too. Episodes are contiguous in a dataset; the last `holdout` of
them (cut at an episode end) are held out: the fit never sees their states, and
the candidate's error is its mean |Q_tot,S − Q_tot,T| there. The loss is the
mean squared error over var(Q_tot,T), full-batch Adam: a few thousand rows and
a mixer of a few thousand weights make every step a few small GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdcc.marl.qmix import build_mixer

__all__ = ["FitData", "fit_data", "fit_mixer"]


@dataclass(frozen=True)
class FitData:
    qs: torch.Tensor  # [N, n] per-agent Q of the fit rows
    states: torch.Tensor  # [N, S]
    target: torch.Tensor  # [N] the teacher mixer's Q_tot
    heldout: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # the same, on held-out episodes

    @property
    def heldout_std(self) -> float:
        return float(self.heldout[2].std()) + 1e-6


def _rows(teacher_mixer: nn.Module, q: torch.Tensor, state: torch.Tensor, g: torch.Generator):
    greedy = q.argmax(-1, keepdim=True)
    rand = torch.randint(0, q.shape[-1], greedy.shape, generator=g)
    qs = torch.cat([q.gather(-1, greedy), q.gather(-1, rand)]).squeeze(-1)
    states = torch.cat([state, state])
    with torch.no_grad():
        return qs, states, teacher_mixer(qs, states).squeeze(-1)


def _split(arrays: dict, holdout: float) -> int:
    """The first held-out row: the episode end nearest (1 − holdout)·N, keeping both parts non-empty."""
    n = len(arrays["state"])
    ends = np.flatnonzero(arrays["episode_end"]) + 1 if "episode_end" in arrays else np.arange(1, n + 1)
    ends = ends[(ends > 0) & (ends < n)]
    if holdout <= 0 or len(ends) == 0:
        return n
    return int(ends[np.argmin(np.abs(ends - (1 - holdout) * n))])


def fit_data(teacher_mixer: nn.Module, arrays: dict, holdout: float, seed: int, rows: int = 0) -> FitData:
    """Fit rows (at most `rows`, a seeded draw; 0: all) and held-out rows from a dataset's arrays (no held-out
    episodes: the fit rows measure it)."""
    q, state = torch.from_numpy(arrays["q"]), torch.from_numpy(arrays["state"])
    cut = _split(arrays, holdout)
    g = torch.Generator().manual_seed(seed)
    fit = _rows(teacher_mixer, q[:cut], state[:cut], g)
    held = _rows(teacher_mixer, q[cut:], state[cut:], g) if cut < len(q) else fit
    if 0 < rows < len(fit[0]):  # the cost of a full-batch step is linear in the rows
        pick = torch.randperm(len(fit[0]), generator=g)[:rows]
        fit = tuple(x[pick] for x in fit)
    return FitData(*fit, heldout=held)


def fit_mixer(spec, data: FitData, steps: int, lr: float, seed: int) -> tuple[nn.Module, float]:
    """(the mixer of `spec.mixer` fitted to the data, its held-out mean |ΔQ_tot|), eval mode, no gradients."""
    torch.manual_seed(seed)
    mixer = build_mixer(spec)
    with torch.no_grad():  # start V at the mean so the regression only learns the shape
        bias = mixer.V.bias if isinstance(mixer.V, nn.Linear) else mixer.V[-1].bias
        bias.fill_(float(data.target.mean()))
    opt = torch.optim.Adam(mixer.parameters(), lr=lr)
    scale = float(data.target.std()) + 1e-6
    for _ in range(steps):
        loss = F.mse_loss(mixer(data.qs, data.states).squeeze(-1), data.target) / scale**2
        opt.zero_grad()
        loss.backward()
        opt.step()
    mixer.eval().requires_grad_(False)
    qs, states, target = data.heldout
    with torch.no_grad():
        err = float((mixer(qs, states).squeeze(-1) - target).abs().mean())
    return mixer, err
