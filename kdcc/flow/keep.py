"""`compile --keep FRACTION` (the default objective, 0.97): the cheapest student that keeps FRACTION of the
teacher's score.

The candidates are every student prune could make within the budget
(`prune.ladders`: the device's ladder of GRU widths, then of feed-forward ones;
the `--budget-*` limits stay hard, and without one every rung up to the
teacher's width is a candidate). Each trial re-runs prune (`prune.width`,
`prune.feed_forward`) through distill and batch-agents from the program before prune
(`pareto.rerun`) and plays the selection seeds (kdcc.marl.scoring: never used in
training), paired with the teacher's returns on the same seeds; the rule and the
choice are `kdcc.marl.keep` (score − z·SE ≥ FRACTION, z = 0 by default; cheapest
by the metric: a budget's first limit, else the estimated latency of one robot's
step on the device prune sizes on).

Select on one set of seeds, report on another. The cheapest candidate that
clears the bar on the selection seeds is the one whose estimate is most likely
to be high by chance (the minimum over candidates near the bar selects upward
noise: a winner's curse), so that estimate is not reported as its score. The
chosen student is played again on `confirm_episodes` (1,000) fresh confirmation
seeds, which no training and no decision saw; that paired score and its SE are
*the* score the report, keep.json and profile.json give. Its SE is a plain
paired SE (nothing was selected on those seeds); with 1,000 episodes it is
~0.01 for the example team. When the confirmation misses the bar
(score − z·SE < FRACTION), the chosen student does not keep the score after
all: the search steps to the next candidate — the next cheapest that kept on
the selection seeds, then the rungs not yet trained, cheapest first — and says
so; the steps are in keep.json (`confirmations`).

The search is coarse to fine, one kind at a time: assuming the score grows
with width, a k-ary bisection over the kind's rungs (k = trials that run at
once, so each round fills them), then the rungs either side of the boundary;
the rest is never trained. A later kind (feed-forward after GRU) is searched
only over its rungs cheaper than the best student kept so far. Every trial is
deterministic (distill seeds itself from the context's seed; one torch
thread), so the same student is chosen whether the trials run in local
processes, one after another, or on Ray (`kdcc.flow.trials`). At the chosen
rung distill is re-run with two more seeds, in the workers while the
confirmation plays: the spread of the selection score over distillation
seeds, reported beside the decision.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from kdcc.core.errors import KdccError
from kdcc.core.progress import is_quiet, stderr_console
from kdcc.flow.trials import open_trials
from kdcc.marl.keep import choose, keeps
from kdcc.marl.worlds import make_env
from kdcc.marl.probe import make_probe
from kdcc.marl.rollout import TorchPolicy
from kdcc.marl.scoring import baseline, play, score_returns
from kdcc.marl.seeds import CONFIRMATION, SELECTION
from kdcc.passes import Budget, get_pass
from kdcc.passes.prune import ladders
from kdcc.reports.pareto import budget_metric, mark_front, rerun_steps, score_point, student_span
from kdcc.targets.robot_cost import scoped_cost

__all__ = ["DEFAULT_KEEP", "CONFIRM_EPISODES", "keep_metric", "keep_search", "keep_decision", "gallop",
           "trial_context"]

CONFIRM_EPISODES = 1000  # fresh confirmation episodes the chosen student's reported score is measured on
EXTRA_SEEDS = 2  # distillation seeds re-run at the chosen rung
DEFAULT_KEEP = 0.97  # `kdcc compile`'s default objective


def keep_metric(budget: Budget) -> str:
    """What "cheapest" means: the first limit a budget gives (flops for a ratio), else the estimated latency of
    a step (in the budget's scope) on the device the cost model recommends."""
    return budget_metric(budget) if budget.is_given() else "latency_us"


def _trial(payload: dict[str, Any], kind: str, width: int, seed: int) -> dict[str, Any]:
    """One candidate: re-run the student's passes at (`kind`, `width`) with distill seed `seed`, cost and score it."""
    start, names, ctx, episodes, key = (payload[k] for k in ("start", "names", "ctx", "episodes", "key"))
    torch.manual_seed(seed)
    steps = rerun_steps(start, names, trial_context(ctx, kind, width, seed))
    program = steps[-1][0]
    point = score_point(f"{kind} {width}", 1.0, program, ctx, make_probe(ctx.teacher), make_env(ctx.teacher.spec.env),
                        episodes, SELECTION.first(episodes), returns=True)
    metric, scope = key.split(".")
    device = scoped_cost(start, ctx.profile, scope)[1]  # the device prune sizes on
    point[key] = round(scoped_cost(program, ctx.profile, scope, device)[0][metric], 4)
    point.update(widths=point["width"], width=width)  # the rung; what prune made (per agent when split)
    # at the compile's own seed the passes' outputs travel back (pickled as the payload was), so the chosen rung
    # is not trained twice; the extra seeds' students are only scored
    ran = [(p.picklable(), wall) for p, wall in steps] if seed == ctx.seed else None
    return {**point, "seed": seed, "steps": ran}


def trial_context(ctx, kind: str, width: int, seed: int):
    """The pass context of the student at rung (`kind`, `width`) trained with distill seed `seed`."""
    return replace(ctx, seed=seed, options={**ctx.options, "prune.width": width, "prune.feed_forward": kind == "ff"})


def gallop(ladders: dict[str, Sequence[float]], k: int,
           evaluate: Callable[[list[tuple[str, int]]], list[bool]]) -> list[tuple[str, int]]:
    """The rungs to evaluate to find the cheapest that keeps, over several ladders (kind → each rung's cost,
    cheapest first), assuming keeping grows along a ladder. Rounds of up to `k` rungs shared by the ladders still
    open: from the cheapest rung up in doubling steps (rungs 0, 1, 3, 7, ...: students are expected to be small)
    until one keeps, then bisection down to the boundary. A ladder closes at its boundary, or where its rungs cost
    no less than the best kept so far. `evaluate([(kind, index)])` → keeps or not, each. Returns every rung
    evaluated, in order."""
    known: dict[tuple[str, int], bool] = {}
    while True:
        best = min((ladders[kd][i] for (kd, i), ok in known.items() if ok), default=math.inf)
        open_ = {}
        for kind, costs in ladders.items():
            lo = max([i for (kd, i), ok in known.items() if kd == kind and not ok], default=-1)
            hi = min([i for (kd, i), ok in known.items() if kd == kind and ok], default=len(costs))
            top = min(hi, sum(1 for c in costs if c < best))
            if lo + 1 < top:
                open_[kind] = (lo, hi < len(costs), top)
        if not open_:
            return list(known)
        jobs = []
        for n, (kind, (lo, found, top)) in zip(_share(k, len(open_)), open_.items()):
            if found:  # bisect (lo, top) into n + 1 parts
                idx = [lo + max(1, round((top - lo) * j / (n + 1))) for j in range(1, n + 1)]
            else:  # gallop up from lo
                idx, i = [], lo
                for _ in range(n):
                    i = min(top - 1, max(i + 1, 2 * i + 1))
                    idx.append(i)
            jobs += [(kind, i) for i in dict.fromkeys(idx) if lo < i < top and (kind, i) not in known]
        known.update(zip(jobs, evaluate(jobs)))


def _share(k: int, n: int) -> list[int]:
    """k slots shared by n ladders, the first ones getting the remainder (each at least one)."""
    return [max(1, k // n + (i < k % n)) for i in range(n)]


def keep_search(start, names: Sequence[str], ctx, fraction: float, episodes: int = 100, workers: int = 0,
                metric: str | None = None, ray: str | None = None, z: float = 0.0,
                confirm_episodes: int = CONFIRM_EPISODES) -> tuple[dict[str, Any], list]:
    """(the search's decision as plain data: every point evaluated, the rule, the chosen rung with its selection
    and confirmation scores, its distillation-seed spread; the chosen trial's pass outputs, which the pipeline
    records without retraining). A KdccError (one line, the best score reached) when no candidate keeps the
    score on both sets of seeds."""
    if episodes < 2 or confirm_episodes < 2:
        raise KdccError(f"--keep-episodes and --confirm-episodes must be at least 2 (got {episodes}, "
                        f"{confirm_episodes})")
    first, last = student_span(names)
    rungs = ladders(start, ctx)
    if not rungs:
        get_pass("prune").run(start, ctx)  # raises its own message: the budget is unreachable
    metric = metric or keep_metric(ctx.budget)
    key = f"{metric}.{ctx.budget.scope}"
    selection = baseline(ctx.teacher, SELECTION.first(episodes), episodes)
    payload = {"start": start, "names": list(names[first:last + 1]), "ctx": ctx, "episodes": episodes, "key": key}
    trials = open_trials(_trial, payload, workers, ray)
    points: dict[tuple[str, int], dict[str, Any]] = {}
    built: dict[tuple[str, int], list] = {}  # each rung's pass outputs at the compile's own seed

    def scored(point: dict[str, Any]) -> dict[str, Any]:
        steps = point.pop("steps")
        if steps is not None:
            built[point["kind"], point["width"]] = steps
        point.update(selection.score(point.pop("returns")))
        point.update(score=round(point["score"], 4), se=round(point["se"], 4))
        return point

    def run(jobs: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
        if not is_quiet() and jobs:
            stderr_console.print(f"[dim]keep: training {', '.join(f'{k} {w}' for k, w, _ in jobs)}[/dim]")
        return [scored(p) for p in trials.run(jobs)]

    costs: dict[str, list[float]] = {}
    for k, _, c in rungs:
        costs.setdefault(k, []).append(c[metric])
    widths = {k: [w for kd, w, _ in rungs if kd == k] for k in costs}

    def evaluate(jobs: list[tuple[str, int]]) -> list[bool]:
        for (kind, i), p in zip(jobs, run([(kind, widths[kind][i], ctx.seed) for kind, i in jobs])):
            p["keeps"] = keeps(p, fraction, z)
            points[kind, widths[kind][i]] = p
            if not is_quiet():
                stderr_console.print(f"[dim]keep: {p['label']}: score {p['score']:.3f} ± {p['se']:.3f}[/dim]")
        return [points[kind, widths[kind][i]]["keeps"] for kind, i in jobs]

    def untried() -> list[tuple[str, int]]:
        """Rungs not trained yet, cheapest first (where the search steps once the kept ones are refused)."""
        rest = [(costs[k][i], k, i) for k in costs for i in range(len(costs[k])) if (k, widths[k][i]) not in points]
        return [(k, i) for _, k, i in sorted(rest)]

    confirmations: list[dict[str, Any]] = []
    try:
        gallop(costs, trials.workers, evaluate)
        while True:
            kept = sorted((p for p in points.values() if p["keeps"] and not p.get("refused")),
                          key=lambda p: (p[key], -p["score"]))
            if not kept:  # none left that kept on the selection seeds: wider rungs not trained yet, if any
                refused = max((p[key] for p in points.values() if p.get("refused")), default=math.inf)
                rest = [(k, i) for k, i in untried() if costs[k][i] > refused]
                if not rest:
                    _no_student(list(points.values()), confirmations, fraction, key, z)
                evaluate(rest[:max(1, trials.workers)])
                continue
            best = kept[0]
            extra = trials.submit([(best["kind"], best["width"], ctx.seed + s) for s in range(1, EXTRA_SEEDS + 1)])
            confirmation = _confirm(ctx, built[best["kind"], best["width"]][-1][0], confirm_episodes)
            confirmation.update(kind=best["kind"], width=best["width"],
                                keeps=confirmation["score"] - z * confirmation["se"] >= fraction)
            confirmations.append(confirmation)
            if confirmation["keeps"]:
                break
            best["refused"] = True
            extra.result()  # the spread of a refused rung is not reported
            if not is_quiet():
                stderr_console.print(f"[dim]keep: {best['label']} misses the bar on the confirmation seeds "
                                     f"({confirmation['score']:.3f} ± {confirmation['se']:.3f}): the next "
                                     f"candidate[/dim]")
        evaluated = sorted(points.values(), key=lambda p: (p[key], p["kind"], p["width"]))
        mark_front(evaluated, key, "score")
        best["chosen"] = True
        extra = [scored(p) for p in extra.result()]
    finally:
        trials.close()
    scores = [best["score"]] + [p["score"] for p in extra]
    mean = sum(scores) / len(scores)
    se = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1) / len(scores))
    chosen = {"width": best["width"], "kind": best["kind"], key: best[key], "score": confirmation["score"],
              "se": confirmation["se"], "seeds": confirmation["seeds"], "episodes": confirm_episodes,
              "selection": {"score": best["score"], "se": best["se"], "episodes": episodes,
                            "seeds": SELECTION.span(episodes)}}
    return {
        "fraction": fraction, "z": z, "metric": key, "episodes": episodes, "seeds": SELECTION.span(episodes),
        "ladder": widths, "workers": trials.workers,
        "backend": trials.backend, "teacher_return": round(selection.teacher_mean, 3),
        "random_return": round(selection.random_mean, 3), "points": evaluated, "chosen": chosen,
        "confirmations": confirmations,
        "rule": f"score − {z:g}·SE ≥ {fraction:g} on the selection seeds, the cheapest by {key}; then the same "
                f"on {confirm_episodes} confirmation seeds, else the next candidate",
        "distill_seeds": {"seeds": [ctx.seed + s for s in range(EXTRA_SEEDS + 1)], "scores": scores,
                          "mean": round(mean, 4), "se": round(se, 4)}}, built[best["kind"], best["width"]]


def _no_student(points: list[dict[str, Any]], confirmations: list[dict[str, Any]], fraction: float, key: str,
                z: float) -> None:
    """The one-line error: the best selection score when none kept there, else the best confirmed one."""
    if not confirmations:
        choose(points, fraction, metric=key, z=z)  # raises, naming the best score reached
    best = max(confirmations, key=lambda c: c["score"])
    raise KdccError(f"--keep {fraction:g}: no student keeps score − {z:g}·SE ≥ {fraction:g} on the confirmation "
                    f"seeds as well (best: {best['kind']} {best['width']}, {best['score']:.3f} ± {best['se']:.3f} "
                    f"over {best['episodes']} episodes)")


def _confirm(ctx, program, episodes: int) -> dict[str, Any]:
    """The student's paired score on `episodes` confirmation seeds (teacher and random there computed once)."""
    env = make_env(ctx.teacher.spec.env)
    first = CONFIRMATION.first(episodes)
    b = baseline(ctx.teacher, first, episodes, env)
    returns = play(TorchPolicy(program.spec, program.team_module()), env, first, episodes, "keep: confirm")
    return {**score_returns(returns, b), "teacher_return": round(b.teacher_mean, 3),
            "random_return": round(b.random_mean, 3)}


def keep_decision(search: dict[str, Any]) -> dict[str, Any]:
    """What prune's record keeps of the search: the rule, each rung scored (cost, score, SE, kept), the choice
    and its distillation-seed spread (the full points, with returns and costs, are keep.json)."""
    key = search["metric"]
    points = [{"kind": p["kind"], "width": p["width"], key: p[key], "score": p["score"], "se": p["se"],
               "keeps": p["keeps"]} for p in search["points"]]
    return {"rule": search["rule"], "episodes": search["episodes"], "seeds": search["seeds"],
            "confirmations": search["confirmations"],
            "ladder": search["ladder"], "points": points, "chosen": search["chosen"],
            "distill_seeds": search["distill_seeds"]}
