"""`compile --keep FRACTION`: the cheapest student that keeps FRACTION of the teacher's score.

The candidates are the rungs of the device's ladder prune could take within the
budget (`prune.ladder`: GRU widths, or feed-forward ones when no GRU fits; the
`--budget-*` limits stay hard). Each trial re-runs prune (`prune.width`) through
distill and batch-agents from the program before prune (`pareto.rerun`) and plays
the held-out env seeds 1000.. (never used in training: collection uses 1..200,
DAgger 50 000..), paired with the teacher's returns on the same seeds; the rule
and the choice are `kdcc.marl.keep` (score − SE ≥ FRACTION, cheapest by the
budget's metric in its scope).

The search is coarse to fine: assuming the score grows with width, a k-ary
bisection over the ladder (k = worker processes, so each round fills them),
then the rungs either side of the boundary are scored too; it stops there, the
rest of the ladder is never trained. Every trial is deterministic (distill
seeds itself from the context's seed; one torch thread), so the same student is
chosen whether the trials run in parallel processes or one after another — and
the pipeline's own re-run at the chosen width makes the very student that was
scored. At the chosen width distill is re-run with two more seeds: the spread of
the score over distillation seeds, reported beside the decision.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from typing import Any, Callable, Sequence

import torch

from kdcc.core.errors import KdccError
from kdcc.core.progress import is_quiet, set_quiet, stderr_console
from kdcc.marl.keep import choose, keeps, paired_score
from kdcc.marl.mpe import make_env
from kdcc.marl.probe import make_probe
from kdcc.marl.rollout import RandomPolicy, TorchPolicy, run_episodes
from kdcc.passes import get_pass
from kdcc.passes.prune import ladder
from kdcc.reports.pareto import budget_metric, mark_front, rerun, score_point, student_span
from kdcc.targets.robot_cost import scoped_cost

__all__ = ["HELD_OUT", "keep_search", "keep_decision", "bisect_ladder"]

HELD_OUT = 1000  # first env seed of the held-out episodes
EXTRA_SEEDS = 2  # distillation seeds re-run at the chosen width


_SHARED: dict[str, Any] = {}  # the search's inputs, inherited by forked workers (fx graphs do not pickle)


def _worker_init() -> None:
    torch.set_num_threads(1)
    set_quiet(True)  # a worker's progress bars would interleave on the terminal


def _trial(width: int, seed: int) -> dict[str, Any]:
    """One candidate: re-run the student's passes at `width` with distill seed `seed`, then cost and score it."""
    start, names, ctx, episodes, key = (_SHARED[k] for k in ("start", "names", "ctx", "episodes", "key"))
    torch.manual_seed(seed)
    sub = replace(ctx, seed=seed, options={**ctx.options, "prune.width": width})
    program = rerun(start, names, sub)
    point = score_point(f"width {width}", 1.0, program, ctx, make_probe(ctx.teacher), make_env(ctx.teacher.spec.env),
                        episodes, HELD_OUT, returns=True)
    metric, scope = key.split(".")
    device = scoped_cost(start, ctx.profile, scope)[1]  # the device prune sizes on
    point[key] = round(scoped_cost(program, ctx.profile, scope, device)[0][metric], 4)
    return {**point, "seed": seed}


class _Trials:
    """Runs trials in `workers` local processes, or in this one when 1. The workers are forked: they inherit
    the program before prune (its fx graphs cannot be pickled to a spawned process) and get back plain data;
    each sets one torch thread, as the compile does, so a trial gives the same numbers in either."""

    def __init__(self, workers: int, start, names, ctx, episodes: int, key: str):
        _SHARED.update(start=start, names=list(names), ctx=ctx, episodes=episodes, key=key)
        self.pool = (ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_worker_init)
                     if workers > 1 else None)

    def run(self, jobs: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
        """[(width, seed)] → points, in order."""
        if not is_quiet() and jobs:
            stderr_console.print(f"[dim]keep: training width {', '.join(str(w) for w, _ in jobs)}[/dim]")
        if self.pool is None:
            return [_trial(w, s) for w, s in jobs]
        return list(self.pool.map(_trial, *zip(*jobs)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        _SHARED.clear()


def bisect_ladder(n: int, k: int, evaluate: Callable[[list[int]], list[bool]]) -> list[int]:
    """The rungs (indices, cheapest first) to evaluate to find the cheapest that keeps, assuming keeping grows
    with the index: rounds of up to `k` rungs spread over the open interval, then the boundary's neighbours.
    `evaluate(indices)` → keeps or not, per index. Returns every index evaluated, in order."""
    known: dict[int, bool] = {}

    def run(idx: list[int]) -> None:
        idx = [i for i in dict.fromkeys(idx) if i not in known]
        known.update(zip(idx, evaluate(idx)))

    lo, hi = -1, n  # rungs ≤ lo fail, rungs ≥ hi keep (sentinels)
    while hi - lo > 1:
        span = hi - lo
        run([lo + max(1, min(span - 1, round(span * j / (k + 1)))) for j in range(1, k + 1)])
        hi = min([i for i, ok in known.items() if ok] + [n])
        lo = max([i for i, ok in known.items() if not ok and i < hi] + [-1])
    run([i for i in (hi - 1, hi + 1) if 0 <= i < n])  # the step either side of the boundary
    return list(known)


def _held_out(ctx, episodes: int) -> tuple[list[float], float]:
    """The teacher's returns on the held-out seeds, and the uniform random policy's mean on them."""
    env = make_env(ctx.teacher.spec.env)
    t = ctx.teacher
    teacher = run_episodes(env, TorchPolicy.from_modules(t.spec, t.agent, t.mixer, env.avail), episodes, HELD_OUT)
    rand = run_episodes(env, RandomPolicy(env.avail, HELD_OUT), episodes, HELD_OUT)
    return teacher.returns.tolist(), rand.mean


def keep_search(start, names: Sequence[str], ctx, fraction: float, episodes: int = 30,
                workers: int = 0) -> dict[str, Any]:
    """The search's decision (plain data): every point evaluated, the rule, the chosen width and its
    distillation-seed spread. A KdccError (one line, the best score reached) when no candidate keeps it."""
    if episodes < 2:
        raise KdccError(f"--keep-episodes must be at least 2 (got {episodes})")
    first, last = student_span(names)
    span = list(names[first:last + 1])
    kind, widths = ladder(start, ctx)
    if not widths:
        get_pass("prune").run(start, ctx)  # raises its own message: the budget is unreachable
    metric = budget_metric(ctx.budget)
    key = f"{metric}.{ctx.budget.scope}"
    teacher, random_mean = _held_out(ctx, episodes)
    workers = workers or os.cpu_count() or 1
    trials = _Trials(workers, start, span, ctx, episodes, key)
    points: dict[int, dict[str, Any]] = {}

    def scored(point: dict[str, Any]) -> dict[str, Any]:
        point.update(paired_score(point.pop("returns"), teacher, random_mean))
        point.update(score=round(point["score"], 4), se=round(point["se"], 4))
        return point

    def evaluate(idx: list[int]) -> list[bool]:
        for i, p in zip(idx, trials.run([(widths[i], ctx.seed) for i in idx])):
            points[i] = scored(p)
            if not is_quiet():
                stderr_console.print(f"[dim]keep: width {widths[i]}: score {p['score']:.3f} ± {p['se']:.3f}[/dim]")
        return [keeps(points[i], fraction) for i in idx]

    try:
        bisect_ladder(len(widths), workers, evaluate)
        evaluated = [points[i] for i in sorted(points)]
        for p in evaluated:
            p["keeps"] = keeps(p, fraction)
        mark_front(evaluated, key, "score")
        decision = {"fraction": fraction, "z": 1.0, "metric": key, "episodes": episodes,
                    "seeds": [HELD_OUT, HELD_OUT + episodes - 1], "kind": kind, "ladder": widths,
                    "workers": workers, "teacher_return": round(sum(teacher) / episodes, 3),
                    "random_return": round(random_mean, 3), "points": evaluated,
                    "rule": f"score − 1·SE ≥ {fraction:g} on the held-out seeds; the cheapest by {key}"}
        best = choose(evaluated, fraction, metric=key)
        best["chosen"] = True
        extra = [scored(p) for p in trials.run([(best["width"], ctx.seed + s) for s in range(1, EXTRA_SEEDS + 1)])]
    finally:
        trials.close()
    scores = [best["score"]] + [p["score"] for p in extra]
    mean = sum(scores) / len(scores)
    se = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1) / len(scores))
    decision["chosen"] = {"width": best["width"], "kind": best["kind"], key: best[key], "score": best["score"],
                          "se": best["se"]}
    decision["distill_seeds"] = {"seeds": [ctx.seed + s for s in range(EXTRA_SEEDS + 1)], "scores": scores,
                                 "mean": round(mean, 4), "se": round(se, 4)}
    return decision


def keep_decision(search: dict[str, Any]) -> dict[str, Any]:
    """What prune's record keeps of the search: the rule, each width scored (cost, score, SE, kept), the choice
    and its distillation-seed spread (the full points, with returns and costs, are keep.json)."""
    key = search["metric"]
    points = [{"width": p["width"], key: p[key], "score": p["score"], "se": p["se"], "keeps": p["keeps"]}
              for p in search["points"]]
    return {"rule": search["rule"], "episodes": search["episodes"], "seeds": search["seeds"],
            "ladder": search["ladder"], "points": points, "chosen": search["chosen"],
            "distill_seeds": search["distill_seeds"]}
