"""prune: structured pruning of hidden units, sized by the target's cost model.

*Which* units: importance from teacher data. On the dataset's steps the agent
is run teacher-forced (inputs and the teacher's recorded hidden states); a
unit's score is its mean |activation| times the norm of the weights that carry
it onward (fc1 unit j: mean|relu(fc1)_j|·‖W_ih[:, j]‖; GRU unit j:
mean|h_j|·(‖fc2[:, j]‖ + ‖W_hh[:, j]‖)), a first-order (Taylor-style) estimate
of what removing it changes. Hypernetwork units of a QMIX mixer are scored the
same way on the dataset's states; a VDN sum or an absent mixer (IQL, actor-critic)
has none, and the decision says so.

*How many*: the cost model decides, not the FLOP count. Candidate widths are
multiples of the target device's preferred multiple (SIMD lanes, warp);
for each the whole team step (agents + current mixer) is costed on the
device the cost model recommends, and the widest candidate within every
budget is kept (no budget given: `Budget.DEFAULT_RATIO`× fewer FLOPs than the teacher).
If no GRU width fits, a feed-forward agent is tried (the GRU's n-gate input
weights seed it); distillation then restores fidelity. An unreachable budget
is an error that states the smallest reachable cost. `--opt prune.width=W`
keeps exactly W units instead (a rung of the ladder, still within the budget; a
heterogeneous team: each agent's own network of W units):
`compile --keep` uses it (and `prune.feed_forward`) to try each rung that `ladders` lists.

A heterogeneous team (agents with different observation or action sizes) gets
one network per agent instead, each with its own width (`prune_split`): the
units each agent keeps are scored on that agent's steps alone. Separate
networks cost separate kernels, so when none fits (a tight latency budget) the
shared network is tried as above; `--opt prune.split=0` asks for it directly.

Both ways end alike (`_student`): the mixer is pruned to the agents' widest
network, and the decision records the sizing (device, multiple, limits, the
cost model's estimate) and the units kept, so it can be replayed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from kdcc.core.errors import KdccError
from kdcc.ir.program import Program, trace
from kdcc.marl.qmix import build_inputs
from kdcc.marl.student import candidate_program, slice_agent, slice_hypernets, split_agent
from kdcc.passes.base import Budget, PassContext, register
from kdcc.passes.config import option
from kdcc.passes.prune_split import allocate_widths, importance_kept
from kdcc.targets.robot_cost import scoped_cost

__all__ = ["PruneConfig", "run", "ladders"]

_OPTION = {"flops": "--budget-flops", "bytes": "--budget-bytes", "latency_us": "--budget-latency-us",
           "energy_uj": "--budget-energy-uj"}


@dataclass(frozen=True)
class PruneConfig:
    split: bool = option(True, "a heterogeneous team gets one network per agent (false: one shared network)")
    width: int = option(0, "keep exactly this agent width, a rung of the device's ladder within the budget "
                        "(a heterogeneous team: each agent's own network of that width; 0: the widest within the budget)")
    feed_forward: bool = option(False, "a feed-forward student agent (false: a GRU when the teacher is recurrent "
                                "and one fits the budget, else feed-forward)")


def _budget_limits(budget: Budget, teacher_flops: float) -> dict[str, float]:
    limits = {k: getattr(budget, k) for k in ("flops", "bytes", "latency_us", "energy_uj")
              if getattr(budget, k) is not None}
    return limits or {"flops": teacher_flops / budget.flop_ratio}


def _sizing(program: Program, ctx: PassContext):
    """(limits, device): what the student must fit in (in the budget's scope: a robot's agent step, or the
    team step), and the device the cost model runs the teacher on."""
    teacher, device = scoped_cost(program, ctx.profile, ctx.budget.scope)
    return _budget_limits(ctx.budget, teacher["flops"]), device


def _candidate_cost(program: Program, ctx: PassContext, device, kind: str, widths: tuple[int, ...] = (),
                    hidden: int | None = None) -> dict[str, float]:
    """The cost in the budget's scope on `device` for agents of `kind` and width `hidden` (or one network per
    agent of `widths`); a 2-layer QMIX mixer is costed at the hypernetwork width it would be pruned to."""
    spec = program.spec
    hidden = max(widths) if widths else hidden
    cand = spec.with_agent(kind=kind, hidden_dim=hidden, **({"widths": widths} if widths else {}))
    mixer = None if spec.mixer.kind == "qmix" else program.mixer
    if mixer is None and spec.mixer.hypernet_layers == 2:
        cand = cand.with_mixer(hypernet_embed=_hypernet_width(spec, hidden))
    return scoped_cost(candidate_program(cand, mixer), ctx.profile, ctx.budget.scope, device)[0]


def _agent_scores(program: Program, ctx: PassContext,
                  per_agent: bool = False) -> tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]:
    """(fc1 unit scores, rnn unit scores) over all steps; with `per_agent`, a pair per agent on its own rows."""
    arr, spec, agent = ctx.dataset.arrays, program.spec, program.agent
    x = build_inputs(spec, torch.from_numpy(arr["obs"]), torch.from_numpy(arr["last_actions"]))
    x = x.reshape(-1, spec.input_dim)
    with torch.no_grad():
        a = F.relu(agent.fc1(x))
        if spec.recurrent:
            h = agent.rnn(a, torch.from_numpy(arr["hidden"]).reshape(-1, spec.agent.hidden_dim))
            w_in, w_rec = agent.rnn.weight_ih, agent.rnn.weight_hh
        else:
            h = F.relu(agent.rnn(a))
            w_in, w_rec = agent.rnn.weight, torch.zeros(1, spec.agent.hidden_dim)
    fc1_w, rnn_w = w_in.norm(dim=0), agent.fc2.weight.norm(dim=0) + w_rec.norm(dim=0)
    if per_agent:
        n, H = spec.n_agents, spec.agent.hidden_dim
        a, h = a.abs().view(-1, n, H), h.abs().view(-1, n, H)
        return [(a[:, i].mean(0) * fc1_w, h[:, i].mean(0) * rnn_w) for i in range(n)]
    return a.abs().mean(0) * fc1_w, h.abs().mean(0) * rnn_w


def _hypernet_scores(program: Program, ctx: PassContext) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.from_numpy(ctx.dataset.arrays["state"])
    m = program.mixer
    scores = []
    with torch.no_grad():
        for name in ("hyper_w_1", "hyper_w_final"):
            net = getattr(m, name)  # a traced Sequential: children "0" (Linear), "1" (ReLU), "2" (Linear)
            first, second = getattr(net, "0"), getattr(net, "2")
            scores.append(F.relu(first(s)).abs().mean(0) * second.weight.norm(dim=0))
    return scores[0], scores[1]


def _widths(top: int, multiple: int) -> list[int]:
    return sorted({w for w in range(multiple, top + 1, multiple)} | {top}, reverse=True)


def _ladder(program: Program, ctx: PassContext, device) -> list[int]:
    """The widths to try, widest first: the device's ladder, or only `prune.width` when it is set."""
    ladder, width = _widths(program.spec.agent.hidden_dim, device.preferred_multiple), ctx.config_for("prune").width
    if width and width not in ladder:
        raise KdccError(f"prune.width {width} is not on {device.name}'s ladder (multiples of "
                        f"{device.preferred_multiple} up to {program.spec.agent.hidden_dim})")
    return [width] if width else ladder


def _kinds(program: Program, ctx: PassContext) -> list[str]:
    """The agent kinds prune may take, in the order it tries them (`prune.feed_forward`: only feed-forward)."""
    return ["ff"] if ctx.config_for("prune").feed_forward or not program.spec.recurrent else ["rnn", "ff"]


def _splits(program: Program, ctx: PassContext) -> bool:
    """A heterogeneous team gets one network per agent (unless `prune.split` is off)."""
    return program.spec.heterogeneous and not program.spec.agent.split and ctx.config_for("prune").split


def ladders(program: Program, ctx: PassContext) -> list[tuple[str, int, dict[str, float]]]:
    """Every student prune could make within the budget, as (kind, width, cost in the budget's scope on the
    device it sizes on), each kind's rungs cheapest first: GRU ones first for a recurrent teacher, then
    feed-forward. `--keep` searches them (`prune.feed_forward` and `prune.width` pick one). A heterogeneous
    team's rung is one network of that width per agent (each reads only its own inputs)."""
    limits, device = _sizing(program, ctx)
    n = program.spec.n_agents if _splits(program, ctx) else 0
    rungs = []
    for kind in _kinds(program, ctx):
        for w in sorted(_widths(program.spec.agent.hidden_dim, device.preferred_multiple)):
            cost = _candidate_cost(program, ctx, device, kind, **({"widths": (w,) * n} if n else {"hidden": w}))
            if all(cost[k] <= v for k, v in limits.items()):
                rungs.append((kind, w, cost))
    return rungs


@register("prune", "remove the least important hidden units, as many as the target cost budget asks",
          needs_training=True, config=PruneConfig)
def run(program: Program, ctx: PassContext) -> Program:
    if ctx.dataset is None:
        raise KdccError("prune needs a dataset (pass --dataset or let compile collect one)")
    spec = program.spec
    if _splits(program, ctx):
        split = _run_split(program, ctx)
        if split is not None:
            return split
    limits, device = _sizing(program, ctx)
    smallest = None
    chosen = None
    for kind in _kinds(program, ctx):
        for w in _ladder(program, ctx, device):
            cost = _candidate_cost(program, ctx, device, kind, hidden=w)
            if smallest is None or cost["flops"] < smallest["flops"]:
                smallest = cost
            if all(cost[k] <= v for k, v in limits.items()):
                chosen = (kind, w, cost)
                break
        if chosen:
            break
    if chosen is None:
        reach = ", ".join(f"{k} {smallest[k]:,.4g}" for k in limits)
        want = ", ".join(f"{_OPTION[k]} {v:,.4g}" for k, v in limits.items())
        per = "per robot (one agent step)" if ctx.budget.scope == "robot" else "per team step"
        raise KdccError(f"budget unreachable on {ctx.profile.name}/{device.name}: asked {want} {per}; the smallest "
                        f"reachable student costs {reach}")
    kind, width, cost = chosen
    fc1_score, rnn_score = _agent_scores(program, ctx)
    keep_fc1, keep_rnn = fc1_score.topk(width).indices, rnn_score.topk(width).indices
    agent, new_spec = slice_agent(program.agent, spec, keep_fc1, keep_rnn, kind)
    return _student(program, ctx, agent, new_spec, {"width": width}, device, limits, cost,
                    {"kept_fc1": sorted(keep_fc1.tolist()), "kept_rnn": sorted(keep_rnn.tolist())})


def _hypernet_width(spec, width: int) -> int:
    """Hypernetwork units kept for an agent width: the teacher's ratio of the two."""
    return max(1, round(spec.mixer.hypernet_embed * width / spec.agent.hidden_dim))


def _pruned_mixer(program: Program, ctx: PassContext, spec, width: int):
    """(mixer graph, decision entries, spec with its mixer) once agents have `width` units: a 2-layer
    QMIX mixer keeps the teacher's ratio of hypernetwork to agent units; other mixers stay as they are."""
    if spec.sums:
        return copy.deepcopy(program.mixer), {"mixer": "no mixer weights (a sum, or no mixer): no hypernetwork units to prune"}, spec
    if not (spec.mixer.kind == "qmix" and spec.mixer.hypernet_layers == 2):
        return copy.deepcopy(program.mixer), {}, spec
    s1, sf = _hypernet_scores(program, ctx)
    keep = _hypernet_width(spec, width)
    mixer, new_spec = slice_hypernets(program.mixer, spec, s1.topk(keep).indices, sf.topk(keep).indices)
    return trace(mixer, "Mixer"), {"hypernet_embed": keep}, new_spec


def _student(program: Program, ctx: PassContext, agent, agent_spec, size: dict, device, limits: dict,
             cost: dict, kept: dict) -> Program:
    """The pruned program: the sliced agent (`agent_spec`: its spec), the mixer pruned to the widest agent
    network, and the decision: `size` (width or widths), the sizing, the cost model's estimate, `kept`."""
    mixer_gm, mixer_decision, mixer_spec = _pruned_mixer(program, ctx, program.spec, agent_spec.agent.hidden_dim)
    decision = {**size, "kind": agent_spec.agent.kind, "scope": ctx.budget.scope, "device": device.name,
                "multiple": device.preferred_multiple,
                "limits": {k: round(v, 4) for k, v in limits.items()},
                "estimate": {k: round(v, 4) for k, v in cost.items()}, **kept, **mixer_decision}
    out = Program(replace(agent_spec, mixer=mixer_spec.mixer), trace(agent, "Agent"), mixer_gm, None, program.history)
    return out.with_decision("prune", **decision)


def _run_split(program: Program, ctx: PassContext) -> Program | None:
    """Heterogeneous agents: one network per agent, widths shared out by the cost model (prune_split), or each
    of width `prune.width` when set; None when no such student fits the budget."""
    spec = program.spec
    limits, device = _sizing(program, ctx)
    allowed = sorted(_widths(spec.agent.hidden_dim, device.preferred_multiple))
    scores = _agent_scores(program, ctx, per_agent=True)
    fixed = ctx.config_for("prune").width and tuple(_ladder(program, ctx, device)) * spec.n_agents
    for kind in _kinds(program, ctx):
        cost = lambda widths, kind=kind: _candidate_cost(program, ctx, device, kind, widths=widths)  # noqa: E731
        if fixed:
            found = (fixed, cost(fixed)) if all(cost(fixed)[k] <= v for k, v in limits.items()) else None
        else:
            found = allocate_widths(scores, allowed, cost, limits)
        if found:
            break
    if not found:  # each network costs its own kernels: a shared one may still fit (the caller tries it)
        return None
    widths, cost = found
    keeps = [(f.topk(w).indices, r.topk(w).indices) for (f, r), w in zip(scores, widths)]
    agent, new_spec = split_agent(program.agent, spec, keeps, kind)
    return _student(program, ctx, agent, new_spec, {"widths": list(widths)}, device, limits, cost,
                    {"importance_kept": [round(importance_kept(s, w), 4) for s, w in zip(scores, widths)],
                     "kept_rnn": [sorted(r.tolist()) for _, r in keeps]})
