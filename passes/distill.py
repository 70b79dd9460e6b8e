"""distill: train the student against the frozen teacher (policy, relations, value, resource).

The student (the program's agent and mixer graphs, trained as they are) is
unrolled over whole episodes from a zero hidden state, on (1) the collected
dataset and (2) fresh MPE rollouts in which the *student* acts, relabelled by
the teacher run along the same trajectory (DAgger: the student learns the
states it will visit itself). The loss is a weighted sum of the terms in
`distill_losses` — policy KL at temperature τ plus greedy-action CE,
relationship distillation on the agents' hidden embeddings, value
decomposition distillation of Q_tot, and the cost-weighted resource term.
Every weight is an option (`--opt distill.<name>=value`, `DistillConfig`); the
temperature τ defaults to the teacher's mean std of Q over actions on the
dataset, the scale on which its greedy choices are made.

What the terms mean follows the teacher's algorithm (`_for_algorithm`): for
VDN and IQL the value term regresses the sum of the chosen Q (their Q_tot), and
it and the Q regression are off unless set (`VALUE_TERMS_OFF` says why);
an actor-critic teacher's actors emit logits, so only the policy terms apply:
KL at τ (auto: 1, the actor's own distribution) and greedy CE, with no Q
regression and no value term (logits have no value scale and there is no
mixer). Its critic is not used (`CRITIC_NOT_USED` says why).
Deterministic for a fixed seed on CPU (single-threaded torch).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from kdcc.core.errors import KdccError
from kdcc.core.progress import progress_bar
from kdcc.ir.program import Program
from kdcc.ir.team import TeamStep
from kdcc.marl.worlds import make_env
from kdcc.marl.qmix import build_inputs
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.marl.seeds import DAGGER
from kdcc.passes import distill_losses as L
from kdcc.passes.base import PassContext, register
from kdcc.passes.config import option
from kdcc.passes.distill_robust import obs_radius, robust_margin_ce

__all__ = ["DistillConfig", "run"]


@dataclass(frozen=True)
class DistillConfig:
    """The training schedule and the weight of every loss term (`distill_losses`); the decision records
    it as used (with τ resolved)."""

    steps: int = option(1500, "Adam steps (cosine-decayed learning rate)")
    batch: int = option(32, "episodes per step, drawn from the dataset and the DAgger rollouts")
    lr: float = option(3e-3, "peak Adam learning rate")
    tau: float = option(0.0, "softmax temperature of the policy terms; 0 = the teacher's mean std of Q over actions")
    w_kl: float = option(1.0, "weight of the policy KL at temperature tau")
    w_q: float = option(0.5, "weight of the scaled Q-value regression")
    w_ce: float = option(0.5, "weight of the cross-entropy to the teacher's greedy action")
    w_relation: float = option(0.5, "weight of the relationship term (agents' pairwise similarity)")
    w_value: float = option(0.5, "weight of the Q_tot regression to the teacher mixer")
    w_resource: float = option(0.05, "weight of the cost-weighted group lasso on hidden units")
    dagger_every: int = option(150, "steps between DAgger rounds of student rollouts (0 = none)")
    dagger_episodes: int = option(16, "student rollouts per DAgger round")
    dagger_epsilon: float = option(0.1, "epsilon-greedy exploration of the student in those rollouts")
    w_robust: float = option(0.0, "weight of the IBP margin loss (certified training; kdcc certify measures it)")
    robust_eps: float = option(0.1, "L-inf radius of that loss, in observation stds, reached halfway through")


CRITIC_NOT_USED = ("the teacher's critic is not used: the student imitates the actor on states labelled by the "
                   "actor itself (dataset and DAgger rollouts), so advantage weighting would only reweight "
                   "on-policy states; no off-policy actions are there for it to discount")


VALUE_TERMS_OFF = ("Q and value regression off by default (set distill.w_q / distill.w_value to keep them): with no "
                   "mixer to carry the value level, a small student spends its units on that level (±4–8 across "
                   "states) instead of the spread over actions that picks the action; on the example VDN and IQL "
                   "teachers the default orin student scored −5.8 and 0.63 with them, 1.02 and 1.00 without; "
                   "the monitor's Q_tot then loses the teacher's scale")


def _for_algorithm(o: DistillConfig, spec, pool: dict[str, torch.Tensor]) -> tuple[DistillConfig, dict]:
    """The options as this teacher's outputs allow (τ resolved), and what each part of the loss used."""
    if spec.policy == "logits":
        o = replace(o, w_q=0.0, w_value=0.0, tau=o.tau if o.tau > 0 else 1.0)
        return o, {"policy": "action logits: KL at tau and greedy CE; no Q regression, no value term",
                   "critic": CRITIC_NOT_USED}
    if o.tau <= 0:  # auto: the teacher's typical spread of Q over actions
        o = replace(o, tau=round(max(float(pool["q"].std(-1).mean()), 1e-4), 6))
    value = {"vdn": "Q_tot = sum of the chosen Q (VDN)", "iql": "sum of the chosen Q (IQL has no mixer)"}
    terms = {"policy": "Q-values", "value": value.get(spec.algorithm, "the QMIX mixer's Q_tot")}
    defaults = DistillConfig()
    if spec.algorithm in value and (o.w_q, o.w_value) == (defaults.w_q, defaults.w_value):
        o = replace(o, w_q=0.0, w_value=0.0)
        terms["value"] += f"; {VALUE_TERMS_OFF}"
    return o, terms


_SEQ_KEYS = ("obs", "last_actions", "state", "q", "hidden", "q_tot")


def _episodes(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    ends = np.flatnonzero(arrays["episode_end"])
    lengths = np.diff(np.concatenate([[-1], ends]))
    if len(set(lengths.tolist())) != 1 or ends[-1] != len(arrays["episode_end"]) - 1:
        raise KdccError("distill needs episodes of one fixed length (MPE's max_cycles)")
    E, T = len(ends), int(lengths[0])
    return {k: torch.from_numpy(np.ascontiguousarray(arrays[k])).reshape(E, T, *arrays[k].shape[1:])
            for k in _SEQ_KEYS}


@torch.no_grad()
def _label(ctx: PassContext, student: TeamStep, episodes: int, seed: int, epsilon: float) -> dict[str, torch.Tensor]:
    """Student-driven rollouts, with the teacher's view of every step."""
    spec, teacher = ctx.teacher.spec, ctx.teacher
    env = make_env(spec.env)
    teacher_policy = TorchPolicy.from_modules(spec, teacher.agent, teacher.mixer, env.avail)
    steps: list[dict] = []

    def record(ep, t, step):
        if t == 0:
            teacher_policy.reset()
        teacher_policy.step(step["obs"], step["last_actions"], step["state"])
        steps.append({**step, **teacher_policy.last})

    run_episodes(env, TorchPolicy(student.spec, student), episodes, seed, epsilon=epsilon, on_step=record)
    T = len(steps) // episodes
    return {k: torch.from_numpy(np.stack([np.asarray(s[k]) for s in steps]).astype(
        np.int64 if k == "last_actions" else np.float32)).reshape(episodes, T, *np.shape(steps[0][k]))
        for k in _SEQ_KEYS}


def _unit_costs(spec, profile) -> dict[str, float]:
    """Share of the step's estimated latency that one hidden unit of each layer costs on the target."""
    from kdcc.ir.printer import team_ops
    from kdcc.marl.student import candidate_program
    from kdcc.targets.cost_model import choose_device, estimate

    ops = team_ops(candidate_program(spec))
    device = choose_device(ops, profile)[0]
    full = estimate(ops, device).total.latency_us
    w = spec.agent.hidden_dim
    if spec.agent.split:  # one unit fewer in every agent's network, shared out per unit
        narrower = tuple(max(1, x - 1) for x in spec.agent.widths)
        smaller_spec, units = spec.with_agent(widths=narrower, hidden_dim=max(narrower)), spec.n_agents
    else:
        smaller_spec, units = spec.with_agent(hidden_dim=max(1, w - 1)), 1
    smaller = estimate(team_ops(candidate_program(smaller_spec)), device).total.latency_us
    per_unit = max(full - smaller, 0.0) / full / units
    n_in, a = spec.input_dim, spec.n_actions
    fc1_flops, rnn_flops = n_in, (6 * w if spec.recurrent else w) + a
    share = fc1_flops / (fc1_flops + rnn_flops)
    return {"fc1": per_unit * share * w, "rnn": per_unit * (1 - share) * w}


def _loss(program: Program, batch: dict[str, torch.Tensor], o: DistillConfig,
          unit_cost: dict, robust: tuple[torch.Tensor, float] | None = None) -> dict[str, torch.Tensor]:
    """`robust`: (obs radius [n, input_dim], ε now) when w_robust > 0 (`distill_robust`)."""
    spec, agent, mixer = program.spec, program.agent, program.mixer
    B, T, n = batch["obs"].shape[:3]
    h = torch.zeros(B * n, spec.agent.hidden_dim)
    qs, hs, robust_terms = [], [], []
    has = torch.tensor(spec.avail(), dtype=torch.bool)
    for t in range(T):
        x = build_inputs(spec, batch["obs"][:, t], batch["last_actions"][:, t]).reshape(B * n, -1)
        hs.append(h.view(B, n, -1))
        if robust is not None:  # the teacher's greedy action among the agent's own (a padded one is no label)
            labels = batch["q"][:, t].masked_fill(~has, float("-inf")).argmax(-1).reshape(B * n)
            robust_terms.append(robust_margin_ce(agent, spec, x, h.detach(), labels, *robust))
        q, h = agent(x, h)
        qs.append(q.view(B, n, -1))
    q_s, h_s = torch.stack(qs, 1), torch.stack(hs, 1)
    q_t, avail = batch["q"], None
    if spec.heterogeneous:  # compare policies over the actions each agent has
        avail = torch.tensor(spec.avail())
        bias = (1.0 - avail) * -1e9
        q_s, q_t = q_s + bias, q_t + bias
    chosen = q_s.gather(-1, q_t.argmax(-1, keepdim=True)).squeeze(-1)
    q_tot = mixer(chosen.reshape(B * T, n), batch["state"].reshape(B * T, -1)).view(B, T)
    terms = {
        "kl": L.policy_kl(q_s, q_t, o.tau),
        "q": L.q_regression(q_s, q_t, avail),
        "ce": L.greedy_ce(q_s, q_t, o.tau),
        "relation": L.relation(h_s[:, 1:], batch["hidden"][:, 1:]) if T > 1 else q_s.new_zeros(()),
        "value": L.value(q_tot, batch["q_tot"]),
        "resource": L.resource(L.gru_unit_norms(agent), unit_cost),
    }
    if robust is not None:
        terms["robust"] = torch.stack(robust_terms).mean()
    terms["total"] = sum(getattr(o, f"w_{k}") * v for k, v in terms.items())
    return terms


@register("distill", "train the student on teacher data and its own rollouts (KL+CE, relation, value, resource)",
          needs_training=True, config=DistillConfig)
def run(program: Program, ctx: PassContext) -> Program:
    if ctx.dataset is None:
        raise KdccError("distill needs a dataset (pass --dataset or let compile collect one)")
    o = ctx.config_for("distill")
    out = program.copy()
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    for gm in (out.agent, out.mixer):
        gm.train()
        for p in gm.parameters():
            p.requires_grad_(True)
    params = [*out.agent.parameters(), *out.mixer.parameters()]
    opt = torch.optim.Adam(params, lr=o.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / o.steps)))
    pool = _episodes(ctx.dataset.arrays)
    o, terms_used = _for_algorithm(o, ctx.teacher.spec, pool)
    unit_cost = _unit_costs(out.spec, ctx.profile)
    radius = obs_radius(out.spec, pool["obs"].reshape(-1, out.spec.n_agents, out.spec.obs_dim).std(0))
    curve: list[dict] = []
    with progress_bar("distill", o.steps) as advance:
        for step in range(o.steps):
            if o.dagger_every and step and step % o.dagger_every == 0:
                team = TeamStep(out.spec, out.agent, out.mixer).eval()
                fresh = _label(ctx, team, o.dagger_episodes, DAGGER.first(o.dagger_episodes, step), o.dagger_epsilon)
                pool = {k: torch.cat([pool[k], fresh[k]]) for k in pool}
                out.agent.train()
            idx = torch.from_numpy(rng.integers(0, len(pool["obs"]), size=o.batch))
            robust = (radius, o.robust_eps * min(1.0, step / max(1, o.steps // 2))) if o.w_robust > 0 else None
            terms = _loss(out, {k: v[idx] for k, v in pool.items()}, o, unit_cost, robust)
            opt.zero_grad()
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            if step % 50 == 0 or step == o.steps - 1:
                curve.append({"step": step, **{k: round(float(v.detach()), 6) for k, v in terms.items()}})
            advance()
    for gm in (out.agent, out.mixer):
        gm.eval()
        for p in gm.parameters():
            p.requires_grad_(False)
    options = asdict(o)
    if o.w_robust == 0:  # the robust term is off: its options are recorded only when it is on
        options = {k: v for k, v in options.items() if k not in ("w_robust", "robust_eps")}
    terms = {"terms": terms_used} if ctx.teacher.spec.algorithm != "qmix" else {}  # QMIX records stay as they were
    return out.with_decision("distill", options=options, **terms, episodes_seen=int(len(pool["obs"])), curve=curve,
                             unit_cost={k: round(v, 6) for k, v in unit_cost.items()})
