"""The regression behind approximate-mixer: a candidate mixer fitted to the teacher mixer's Q_tot.

Rows are the dataset's states, each twice: at the teacher's per-agent Q of its
greedy actions and of uniformly random actions, so the fit sees Q_tot off the
greedy point too. Episodes are contiguous in a dataset; the last `holdout` of
them (cut at an episode end) are held out: the fit never sees their states, and
the candidate's error is its mean |Q_tot,S − Q_tot,T| there.

Few episodes are the limit, not the fit: on the example teacher (200 episodes,
160 fitted) a mixer fits its rows to 2–3% of Q_tot's std and misses held-out
episodes by 21% (longer fits with a decayed learning rate, all the rows, or
standardised states move that between −2 and +6 points); with 760 episodes the
same mixer misses them by 6–8%. The
teacher's mixer is at hand, so the fit adds rows it labels itself (`synthetic`):
states mixed from two fit rows a, b,

    s = μ + (λ·(s_a − μ) + (1 − λ)·(s_b − μ)) / √(λ² + (1 − λ)²),  λ ~ U(0, 1),

μ the fit states' mean, each with the agents' Q of its nearer parent. The
weights sum to one with μ's, so where the state is affine in the entities'
positions and velocities (MPE's is) s is the state of some arrangement of them;
dividing by √(λ² + (1 − λ)²) keeps the spread of the states, which a plain
average shrinks towards μ. Held-out states are never mixed in.

The loss is the mean squared error over var(Q_tot,T), Adam on batches drawn
from all those rows with a cosine-decayed learning rate: each step costs the
same whatever the number of rows. A candidate whose held-out error halfway is
above `give_up` stops there (the second half of a fit lowered it by 15% at
most on the example teacher): the ladder's cheap candidates that cannot meet
the goal cost half a fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdcc.marl.qmix import build_mixer

__all__ = ["FitData", "fit_data", "fit_mixer"]

_LABEL_CHUNK = 8192  # synthetic rows labelled by the teacher's mixer per call (bounds its activations' memory)


@dataclass(frozen=True)
class FitData:
    qs: torch.Tensor  # [N, n] per-agent Q of the fit rows: the dataset's `real` first, then synthetic ones
    states: torch.Tensor  # [N, S]
    target: torch.Tensor  # [N] the teacher mixer's Q_tot
    heldout: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # the same, on held-out episodes
    real: int  # how many of the fit rows are the dataset's

    @property
    def heldout_std(self) -> float:
        return float(self.heldout[2].std()) + 1e-6


def _rows(q: torch.Tensor, state: torch.Tensor, g: torch.Generator):
    greedy = q.argmax(-1, keepdim=True)
    rand = torch.randint(0, q.shape[-1], greedy.shape, generator=g)
    return torch.cat([q.gather(-1, greedy), q.gather(-1, rand)]).squeeze(-1), torch.cat([state, state])


def _mixtures(qs: torch.Tensor, states: torch.Tensor, k: int, g: torch.Generator):
    """k states mixed from pairs of fit rows (the module docstring's formula), each with its nearer parent's Q."""
    a, b = torch.randint(0, len(qs), (2, k), generator=g)
    lam = torch.rand(k, 1, generator=g)
    mu = states.mean(0)
    mixed = mu + (lam * (states[a] - mu) + (1 - lam) * (states[b] - mu)) / (lam**2 + (1 - lam) ** 2).sqrt()
    return torch.where(lam > 0.5, qs[a], qs[b]), mixed


def _label(teacher_mixer: nn.Module, qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([teacher_mixer(qs[i:i + _LABEL_CHUNK], states[i:i + _LABEL_CHUNK]).squeeze(-1)
                          for i in range(0, len(qs), _LABEL_CHUNK)])


def _split(arrays: dict, holdout: float) -> int:
    """The first held-out row: the episode end nearest (1 − holdout)·N, keeping both parts non-empty."""
    n = len(arrays["state"])
    ends = np.flatnonzero(arrays["episode_end"]) + 1 if "episode_end" in arrays else np.arange(1, n + 1)
    ends = ends[(ends > 0) & (ends < n)]
    if holdout <= 0 or len(ends) == 0:
        return n
    return int(ends[np.argmin(np.abs(ends - (1 - holdout) * n))])


def fit_data(teacher_mixer: nn.Module, arrays: dict, holdout: float, seed: int, synthetic: int = 0) -> FitData:
    """Fit rows (the fit episodes' and `synthetic` mixtures of them) and held-out rows from a dataset's arrays
    (no held-out episodes: the fit episodes' rows measure it)."""
    q, state = torch.from_numpy(arrays["q"]), torch.from_numpy(arrays["state"])
    cut = _split(arrays, holdout)
    g = torch.Generator().manual_seed(seed)
    fit_q, fit_s = _rows(q[:cut], state[:cut], g)
    held = _rows(q[cut:], state[cut:], g) if cut < len(q) else (fit_q, fit_s)
    mix_q, mix_s = _mixtures(fit_q, fit_s, synthetic, g)
    qs, states = torch.cat([fit_q, mix_q]), torch.cat([fit_s, mix_s])
    return FitData(qs, states, _label(teacher_mixer, qs, states), heldout=(*held, _label(teacher_mixer, *held)),
                   real=len(fit_q))


def _heldout_error(mixer: nn.Module, data: FitData) -> float:
    """Mean |ΔQ_tot| of a mixer on the held-out rows."""
    qs, states, target = data.heldout
    with torch.no_grad():
        return float((mixer(qs, states).squeeze(-1) - target).abs().mean())


def fit_mixer(spec, data: FitData, steps: int, lr: float, batch: int, seed: int,
              give_up: float = math.inf) -> tuple[nn.Module, float, int]:
    """(the mixer of `spec.mixer` fitted to the data, eval mode, no gradients; its held-out mean |ΔQ_tot|; the
    steps it ran: `steps`, or half of them when its held-out error then is above `give_up`)."""
    torch.manual_seed(seed)
    mixer = build_mixer(spec)
    with torch.no_grad():  # start V at the mean so the regression only learns the shape
        bias = mixer.V.bias if isinstance(mixer.V, nn.Linear) else mixer.V[-1].bias
        bias.fill_(float(data.target.mean()))
    opt = torch.optim.Adam(mixer.parameters(), lr=lr, fused=True)
    g = torch.Generator().manual_seed(seed)
    scale = float(data.target.std()) + 1e-6
    done = steps
    for i in range(steps):
        opt.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * i / steps))
        rows = torch.randint(0, len(data.target), (batch,), generator=g)
        loss = F.mse_loss(mixer(data.qs[rows], data.states[rows]).squeeze(-1), data.target[rows]) / scale**2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i + 1 == steps // 2 and _heldout_error(mixer, data) > give_up:
            done = i + 1
            break
    mixer.eval().requires_grad_(False)
    return mixer, _heldout_error(mixer, data), done
