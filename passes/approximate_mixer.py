"""approximate-mixer: replace the hypernetwork mixer by the cheapest monotonic one that meets a fidelity goal.

The QMIX mixer computes Q_tot = elu(q·|W1(s)| + b1(s))·|W_f(s)| + V(s), where
W1, b1, W_f, V are produced by hypernetworks of the state: most of its FLOPs.
Two cheaper forms keep the form, and with it monotonicity in every agent's q
(∂Q_tot/∂q_i ≥ 0, the QMIX constraint, from the absolute values and elu):

    static   Q_tot ≈ elu(q·|W1| + b1)·|w_f| + V'(s)        constant mixing weights, V' a small MLP
    hyper    the same four maps from one small state embedding z = relu(A·s + a) of width H
             (`kdcc.marl.qmix.HyperMixer`): weights that still follow the state

A static mixer cannot follow how the teacher's weighting of the agents changes
with the state (on the example teacher its error is 23–31% of Q_tot's spread),
so the pass tries a ladder of candidates (`candidates`) from the cheapest, by
the cost model's latency (then FLOPs) of the team step on the target, and keeps
the first whose mean |ΔQ_tot| on held-out episodes is ≤ goal × the teacher's
Q_tot std there (the "fidelity goal", default 10%); when none meets it, the one
with the smallest error. Every candidate tried is recorded (error, cost, steps).
A candidate still above 1.25 × the goal halfway through its fit is given up
there (the second half lowered the error by 15% at most on the example teacher,
where meeting the goal from there takes 20%); the last one always runs its
whole fit.

Each is fitted (`kdcc.passes.mixer_fit`) by Adam regression on the teacher
mixer's Q_tot over the dataset's states, at the teacher's per-agent Q of the
greedy actions and of random actions (so the fit covers more than the greedy
point), and over `synthetic` states mixed from pairs of them, labelled by the
teacher's mixer: the example teacher's 160 fitted episodes alone leave every
candidate 21% or more off on held-out episodes; with the mixtures `hyper` 16/32
is 9.3% off there (2% on the fit's own rows). The last `holdout` of the dataset's
episodes are left out of the fit and of the mixtures, and measure it.
Preconditions: a dataset. A VDN mixer (a sum) and the absent mixer of IQL and
actor-critic teachers have nothing to approximate: the pass records why and
leaves the program as it is. Options: `ApproximateMixerConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kdcc.core.errors import KdccError
from kdcc.ir.program import Program, trace
from kdcc.marl.qmix import build_mixer
from kdcc.passes.base import PassContext, register
from kdcc.passes.config import option
from kdcc.passes.manager import program_metrics
from kdcc.passes.mixer_fit import FitData, fit_data, fit_mixer

__all__ = ["ApproximateMixerConfig", "candidates", "run"]


@dataclass(frozen=True)
class ApproximateMixerConfig:
    goal: float = option(0.1, "fidelity goal: held-out mean |ΔQ_tot| ≤ goal × the teacher's Q_tot std; the "
                              "cheapest candidate that meets it is kept (none: the most faithful)")
    embed: int = option(8, "width E of the static candidate's hidden layer")
    max_hyper: int = option(64, "widest state embedding H a hyper candidate may have (0: static only)")
    steps: int = option(2000, "Adam steps of each candidate's regression on the teacher mixer's Q_tot")
    lr: float = option(2e-2, "Adam's initial learning rate in that regression (cosine-decayed to 0)")
    batch: int = option(512, "rows per Adam step, drawn from the fit rows (each step's cost is linear in it)")
    synthetic: int = option(48000, "fit rows added at states mixed from pairs of the fit episodes' states, "
                                   "labelled by the teacher's mixer (0: the dataset's rows only)")
    holdout: float = option(0.2, "fraction of the dataset's episodes left out of the fit to measure it")


# (kind, E, H): the static form, then hyper mixers of growing state embedding H and mixing width E
_LADDER = (("static", None, 0), ("hyper", 4, 8), ("hyper", 8, 16), ("hyper", 16, 32), ("hyper", 16, 64),
           ("hyper", 32, 64))
_GIVE_UP = 1.25  # × the goal: a candidate's held-out error halfway above it stops the fit there


def candidates(spec, config: ApproximateMixerConfig) -> list:
    """The candidate specs the config allows, in ladder order (costed and sorted by the pass)."""
    return [spec.with_mixer(kind=kind, embed_dim=embed or config.embed, hypernet_embed=h or spec.mixer.hypernet_embed)
            for kind, embed, h in _LADDER if h <= config.max_hyper]


_SKIP = {"vdn": "VDN's mixer is a sum: nothing to approximate",
         "iql": "IQL has no mixer (q_tot is the sum of the agents' chosen Q): nothing to approximate",
         "mappo": "MAPPO's actors have no mixer (its critic is not needed to act): nothing to approximate",
         "ippo": "IPPO's actors have no mixer (its critics are not needed to act): nothing to approximate"}


def _cost(program: Program, spec, ctx: PassContext) -> dict:
    """The cost model's figures of the team step with this candidate's mixer (the agents are the same for all)."""
    m = program_metrics(Program(spec, program.agent, trace(build_mixer(spec), "Mixer")), ctx.profile)
    return {"flops": m["flops"], "latency_us": m["latency_us"], "device": m["device"]}


def _try(spec, data: FitData, config: ApproximateMixerConfig, seed: int, last: bool):
    """(fitted mixer, record) of one candidate: its held-out error against the goal, the steps it ran."""
    give_up = math.inf if last else _GIVE_UP * config.goal * data.heldout_std
    mixer, err, steps = fit_mixer(spec, data, config.steps, config.lr, config.batch, seed, give_up)
    entry = {"kind": spec.mixer.kind, "embed": spec.mixer.embed_dim,
             **({"hyper": spec.mixer.hypernet_embed} if spec.mixer.kind == "hyper" else {}),
             "heldout_mean_abs_err": round(err, 5), "relative_err": round(err / data.heldout_std, 5), "steps": steps}
    return mixer, entry


@register("approximate-mixer", "replace the hypernetwork mixer by the cheapest fitted monotonic mixer that meets "
          "the fidelity goal", needs_training=True, config=ApproximateMixerConfig)
def run(program: Program, ctx: PassContext) -> Program:
    if program.spec.mixer.kind in ("static", "hyper"):
        return program.with_decision("approximate-mixer", applied=False,
                                     reason=f"mixer is already an approximation ({program.spec.mixer.kind})")
    if program.spec.sums:
        return program.with_decision("approximate-mixer", applied=False, reason=_SKIP[program.spec.algorithm])
    if ctx.dataset is None:
        raise KdccError("approximate-mixer needs a dataset (pass --dataset or let compile collect one)")
    config = ctx.config_for("approximate-mixer")
    if config.batch < 1 or config.synthetic < 0:
        raise KdccError(f"--opt approximate-mixer.batch must be ≥ 1 and approximate-mixer.synthetic ≥ 0 "
                        f"(got {config.batch} and {config.synthetic})")
    data = fit_data(ctx.teacher.mixer, ctx.dataset.arrays, config.holdout, ctx.seed, config.synthetic)
    ladder = sorted(((_cost(program, spec, ctx), spec) for spec in candidates(program.spec, config)),
                    key=lambda cs: (cs[0]["latency_us"], cs[0]["flops"]))
    tried, best = [], None
    for i, (cost, spec) in enumerate(ladder):
        mixer, entry = _try(spec, data, config, ctx.seed, last=i == len(ladder) - 1)
        tried.append({**entry, **cost})
        if best is None or entry["relative_err"] < best[2]["relative_err"]:
            best = (spec, mixer, entry)
        if entry["relative_err"] <= config.goal:
            best = (spec, mixer, entry)
            break
    spec, mixer, entry = best
    met = entry["relative_err"] <= config.goal
    with torch.no_grad():  # on the dataset's own fit rows (not the synthetic ones)
        err = (mixer(data.qs[:data.real], data.states[:data.real]).squeeze(-1) - data.target[:data.real]).abs()
    out = program.copy(mixer=trace(mixer, "Mixer"))
    out = Program(spec, out.agent, out.mixer, out.team, out.history)
    return out.with_decision(
        "approximate-mixer", applied=True, kind=spec.mixer.kind, embed=spec.mixer.embed_dim,
        **({"hyper": spec.mixer.hypernet_embed} if spec.mixer.kind == "hyper" else {}),
        goal=config.goal, goal_met=met,
        reason=(f"the cheapest candidate within {config.goal:g} × the teacher's Q_tot std on held-out states" if met
                else f"no candidate within {config.goal:g} × the teacher's Q_tot std: the most faithful one"),
        heldout_mean_abs_err=entry["heldout_mean_abs_err"], relative_err=entry["relative_err"],
        heldout_target_std=round(data.heldout_std, 5), candidates=tried,
        fit_mean_abs_err=round(float(err.mean()), 5), fit_max_abs_err=round(float(err.max()), 5),
        target_std=round(float(data.target[:data.real].std()), 5))
