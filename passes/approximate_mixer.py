"""approximate-mixer: replace the hypernetwork mixer by a cheap monotonic one fitted to it.

The QMIX mixer computes Q_tot = elu(q·|W1(s)| + b1(s))·|W_f(s)| + V(s), where
W1, b1, W_f are produced by hypernetworks of the state: most of its FLOPs. The
approximation keeps the form but makes the mixing weights constants:

    Q_tot ≈ elu(q·|W1| + b1)·|w_f| + V'(s),   V' a small MLP of the state,

which stays monotonic in every agent's q (∂Q_tot/∂q_i ≥ 0, the QMIX
constraint) and costs ~n·E + S·E FLOPs. It is fitted by regression on the
teacher mixer's Q_tot over the dataset's states, at the teacher's per-agent Q
of the greedy actions and of random actions (so the fit covers more than the
greedy point). The fit's error is recorded. Preconditions: a dataset.
A VDN mixer (a sum) and the absent mixer of IQL and actor-critic teachers have
nothing to approximate: the pass records why and leaves the program as it is.
Options (`--opt approximate-mixer.<name>=value`): `ApproximateMixerConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcc.core.errors import KdccError
from kdcc.ir.program import Program, trace
from kdcc.marl.qmix import StaticMixer
from kdcc.passes.base import PassContext, register
from kdcc.passes.config import option

__all__ = ["ApproximateMixerConfig", "run"]


@dataclass(frozen=True)
class ApproximateMixerConfig:
    embed: int = option(8, "width E of the fitted mixer's hidden layer")
    steps: int = option(600, "Adam steps of the regression on the teacher mixer's Q_tot")
    lr: float = option(1e-2, "Adam learning rate of that regression")


def _fit_data(ctx: PassContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    arr = ctx.dataset.arrays
    q = torch.from_numpy(arr["q"])  # [N, n, A]
    state = torch.from_numpy(arr["state"])
    g = torch.Generator().manual_seed(ctx.seed)
    greedy = q.argmax(-1, keepdim=True)
    rand = torch.randint(0, q.shape[-1], greedy.shape, generator=g)
    qs = torch.cat([q.gather(-1, greedy), q.gather(-1, rand)]).squeeze(-1)
    states = torch.cat([state, state])
    with torch.no_grad():
        target = ctx.teacher.mixer(qs, states).squeeze(-1)
    return qs, states, target


_SKIP = {"vdn": "VDN's mixer is a sum: nothing to approximate",
         "iql": "IQL has no mixer (q_tot is the sum of the agents' chosen Q): nothing to approximate",
         "mappo": "MAPPO's actors have no mixer (its critic is not needed to act): nothing to approximate",
         "ippo": "IPPO's actors have no mixer (its critics are not needed to act): nothing to approximate"}


@register("approximate-mixer", "replace the hypernetwork mixer by a fitted state-independent monotonic mixer",
          needs_training=True, config=ApproximateMixerConfig)
def run(program: Program, ctx: PassContext) -> Program:
    if program.spec.mixer.kind == "static":
        return program.with_decision("approximate-mixer", applied=False, reason="mixer is already static")
    if program.spec.sums:
        return program.with_decision("approximate-mixer", applied=False, reason=_SKIP[program.spec.algorithm])
    if ctx.dataset is None:
        raise KdccError("approximate-mixer needs a dataset (pass --dataset or let compile collect one)")
    config = ctx.config_for("approximate-mixer")
    spec = program.spec.with_mixer(kind="static", embed_dim=config.embed)
    qs, states, target = _fit_data(ctx)
    torch.manual_seed(ctx.seed)
    mixer = StaticMixer(spec.n_agents, spec.state_dim, config.embed)
    with torch.no_grad():  # start V' at the mean so the regression only learns the shape
        mixer.V[2].bias.fill_(float(target.mean()))
    opt = torch.optim.Adam(mixer.parameters(), lr=config.lr)
    scale = float(target.std()) + 1e-6
    for _ in range(config.steps):
        loss = F.mse_loss(mixer(qs, states).squeeze(-1), target) / scale**2
        opt.zero_grad()
        loss.backward()
        opt.step()
    mixer.eval()
    with torch.no_grad():
        err = (mixer(qs, states).squeeze(-1) - target).abs()
    out = program.copy(mixer=trace(mixer, "Mixer"))
    out = Program(spec, out.agent, out.mixer, out.team, out.history)
    return out.with_decision("approximate-mixer", applied=True, kind="static", embed=config.embed,
                             fit_mean_abs_err=round(float(err.mean()), 5), fit_max_abs_err=round(float(err.max()), 5),
                             target_std=round(scale, 5))
