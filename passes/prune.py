"""prune: structured pruning of hidden units, sized by the target's cost model.

*Which* units: importance from teacher data. On the dataset's steps the agent
is run teacher-forced (inputs and the teacher's recorded hidden states); a
unit's score is its mean |activation| times the norm of the weights that carry
it onward (fc1 unit j: mean|relu(fc1)_j|·‖W_ih[:, j]‖; GRU unit j:
mean|h_j|·(‖fc2[:, j]‖ + ‖W_hh[:, j]‖)), a first-order (Taylor-style) estimate
of what removing it changes. Hypernetwork units of a QMIX mixer are scored the
same way on the dataset's states.

*How many*: the cost model decides, not the FLOP count. Candidate widths are
multiples of the target device's preferred multiple (SIMD lanes, warp);
for each the whole team step (agents + current mixer) is costed on the
device the cost model recommends, and the widest candidate within every
budget is kept (default budget: `Budget.ratio`× fewer FLOPs than the teacher).
If no GRU width fits, a feed-forward agent is tried (the GRU's n-gate input
weights seed it); distillation then restores fidelity. An unreachable budget
is an error that states the smallest reachable cost.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from kdcc.errors import KdccError
from kdcc.ir.printer import team_ops
from kdcc.ir.program import Program, trace
from kdcc.passes.base import Budget, PassContext, register
from kdcc.qmix import build_inputs
from kdcc.student import candidate_ops, slice_agent, slice_hypernets


def _cost(ops, profile, budget_device=None):
    from kdcc.targets.cost_model import choose_device, estimate

    device = budget_device or choose_device(ops, profile)[0]
    total = estimate(ops, device).total
    return {"flops": total.flops, "bytes": total.bytes, "latency_us": total.latency_us,
            "energy_uj": total.energy_uj}, device


_OPTION = {"flops": "--budget-flops", "bytes": "--budget-bytes", "latency_us": "--budget-latency-us",
           "energy_uj": "--budget-energy-uj"}


def _budget_limits(budget: Budget, teacher_flops: int) -> dict[str, float]:
    limits = {k: getattr(budget, k) for k in ("flops", "bytes", "latency_us", "energy_uj")
              if getattr(budget, k) is not None}
    return limits or {"flops": teacher_flops / budget.ratio}


def _agent_scores(program: Program, ctx: PassContext) -> tuple[torch.Tensor, torch.Tensor]:
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
    fc1_score = a.abs().mean(0) * w_in.norm(dim=0)
    rnn_score = h.abs().mean(0) * (agent.fc2.weight.norm(dim=0) + w_rec.norm(dim=0))
    return fc1_score, rnn_score


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


@register("prune", "remove the least important hidden units, as many as the target cost budget asks",
          needs_training=True)
def run(program: Program, ctx: PassContext) -> Program:
    if ctx.dataset is None:
        raise KdccError("prune needs a dataset (pass --dataset or let compile collect one)")
    spec = program.spec
    teacher_ops = team_ops(program)
    teacher_flops = sum(c.flops for _, c in teacher_ops)
    limits = _budget_limits(ctx.budget, teacher_flops)
    qmix_2layer = spec.mixer.kind == "qmix" and spec.mixer.hypernet_layers == 2
    ratio_of_h = lambda w: max(1, round(spec.mixer.hypernet_embed * w / spec.agent.hidden_dim))  # noqa: E731
    _, device = _cost(teacher_ops, ctx.profile)
    multiple = device.preferred_multiple
    smallest = None
    chosen = None
    kinds = ["rnn", "ff"] if spec.recurrent else ["ff"]
    for kind in kinds:
        for w in _widths(spec.agent.hidden_dim, multiple):
            cand = spec.with_agent(hidden_dim=w, kind=kind)
            if qmix_2layer:
                cand = cand.with_mixer(hypernet_embed=ratio_of_h(w))
            mixer = None if spec.mixer.kind == "qmix" else program.mixer
            cost, _ = _cost(candidate_ops(cand, mixer), ctx.profile, device)
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
        raise KdccError(f"budget unreachable on {ctx.profile.name}/{device.name}: asked {want}; the smallest "
                        f"reachable student costs {reach}")
    kind, width, cost = chosen
    fc1_score, rnn_score = _agent_scores(program, ctx)
    keep_fc1 = fc1_score.topk(width).indices
    keep_rnn = rnn_score.topk(width).indices
    agent, new_spec = slice_agent(program.agent, spec, keep_fc1, keep_rnn, kind)
    mixer_gm = copy.deepcopy(program.mixer)
    decision = {"width": width, "kind": kind, "device": device.name, "multiple": multiple,
                "limits": {k: round(v, 4) for k, v in limits.items()},
                "estimate": {k: round(v, 4) for k, v in cost.items()},
                "kept_fc1": sorted(keep_fc1.tolist()), "kept_rnn": sorted(keep_rnn.tolist())}
    if qmix_2layer:
        s1, sf = _hypernet_scores(program, ctx)
        keep = ratio_of_h(width)
        mixer, new_spec2 = slice_hypernets(program.mixer, new_spec, s1.topk(keep).indices, sf.topk(keep).indices)
        new_spec, mixer_gm = new_spec2, trace(mixer, "Mixer")
        decision["hypernet_embed"] = keep
    out = Program(new_spec, trace(agent, "Agent"), mixer_gm, None, program.history)
    return out.with_decision("prune", **decision)
