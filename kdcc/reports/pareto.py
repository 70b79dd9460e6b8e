"""`compile --pareto`: the budget-vs-score trade-off around the budget asked for.

The passes from prune to distill, and those after it up to fuse-team (batch-agents),
are re-run from the same program (what the pipeline had before prune) under the
budget scaled by each factor (every limit given × f, or the default FLOP ratio
÷ f); each student is costed by the cost model and scored in MPE (mean team
return over the teacher's report seeds, kdcc.marl.scoring) and on the probe. When the student
gives each agent its own network, the asked budget is also run with one shared
network, to show what that bought. Points no other point beats on both the
budget's metric and return form the Pareto front. A factor whose budget is
unreachable is listed as such.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Sequence

from kdcc.core.errors import KdccError
from kdcc.core.progress import is_quiet, stderr_console
from kdcc.marl.worlds import make_env
from kdcc.marl.probe import fidelity, make_probe, replay
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.marl.scoring import baseline
from kdcc.marl.seeds import REPORT
from kdcc.passes import get_pass
from kdcc.passes.base import Budget
from kdcc.passes.manager import program_metrics
from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["FACTORS", "PARETO_COLUMNS", "budget_sweep", "pareto_section", "pareto_figure", "student_span", "rerun", "rerun_steps",
           "score_point", "mark_front", "budget_metric"]

FACTORS = (0.25, 0.5, 2.0)  # around the budget asked for (1×, the compile's own student)


def scaled(budget: Budget, factor: float) -> Budget:
    limits = {k: getattr(budget, k) * factor for k in ("flops", "bytes", "latency_us", "energy_uj")
              if getattr(budget, k) is not None}
    return replace(budget, **limits) if limits else replace(budget, ratio=budget.flop_ratio / factor)


def score_point(label: str, factor: float, program, ctx, probe, env, episodes: int, seed: int,
                returns: bool = False) -> dict[str, Any]:
    """A student's costs (team step), probe agreement and MPE return; with `returns`, every episode's too."""
    m = program_metrics(program, ctx.profile)
    fid = fidelity(replay(program.team_module(), program.spec, probe), probe)
    ret = run_episodes(env, TorchPolicy(program.spec, program.team_module()), episodes, seed)
    widths = list(program.spec.agent.widths) or program.spec.agent.hidden_dim
    return {"label": label, "factor": factor, "width": widths, "kind": program.spec.agent.kind,
            "flops": m["flops"], "bytes": m["bytes"], "latency_us": m["latency_us"], "energy_uj": m["energy_uj"],
            "device": m["device"],
            "agreement": round(fid["action_agreement"], 4), "return": round(ret.mean, 3),
            "return_std": round(ret.std, 3), **({"returns": ret.returns.tolist()} if returns else {})}


def student_span(names: Sequence[str]) -> tuple[int, int]:
    """(first, last): the passes that make the student — prune, distill, and what follows distill on the agent
    and mixer graphs (batch-agents) before fuse-team."""
    first = names.index("prune")
    last = names.index("distill", first)
    while last + 1 < len(names) and names[last + 1] != "fuse-team":
        last += 1
    return first, last


def rerun(start, names: Sequence[str], ctx):
    """`names` run in order from the program `start` under `ctx` (no records: a study's re-run)."""
    steps = rerun_steps(start, names, ctx)
    return steps[-1][0] if steps else start


def rerun_steps(start, names: Sequence[str], ctx) -> list[tuple[Any, float]]:
    """(output, wall seconds) of each of `names` run in order from `start` under `ctx`."""
    steps, program = [], start
    for name in names:
        t = time.perf_counter()
        program = get_pass(name).run(program, ctx)
        steps.append((program, time.perf_counter() - t))
    return steps


def budget_metric(budget: Budget) -> str:
    """The cost a budget limits first (flops when none is set: the default ratio is a FLOP budget)."""
    return next((k for k in ("flops", "bytes", "latency_us", "energy_uj") if getattr(budget, k) is not None),
                "flops")


def mark_front(points: list[dict[str, Any]], metric: str, score: str = "return") -> None:
    """`on_front` on every reached point: no other point is as cheap (by `metric`) and scores at least as high."""
    reached = [p for p in points if "unreachable" not in p]
    for p in reached:
        p["on_front"] = not any(q is not p and q[metric] <= p[metric] and q[score] >= p[score]
                                and (q[metric], q[score]) != (p[metric], p[score]) for q in reached)


def budget_sweep(result, factors: Sequence[float] = FACTORS, episodes: int = 50,
                 seed: int = REPORT.start) -> dict[str, Any]:
    """Students at the scaled budgets, the compile's own, and the teacher: costs, returns, the front."""
    names = [r.name for r in result.records]  # run_passes checked: prune, then distill
    first, last = student_span(names)
    start, ctx = result.records[first - 1].program, result.ctx
    # each scaled budget picks its own width (a width fixed by --keep or prune.width would not fit them all)
    ctx = replace(ctx, options={k: v for k, v in ctx.options.items() if k not in ("prune.width", "prune.feed_forward")})
    probe, env = make_probe(ctx.teacher), make_env(ctx.teacher.spec.env)
    student = result.records[last].program
    points = [score_point("asked", 1.0, student, ctx, probe, env, episodes, seed)]
    runs = [(f"× {f:g}", f, replace(ctx, budget=scaled(ctx.budget, f))) for f in factors]
    if student.spec.agent.split:  # what giving each agent its own network bought, at the same budget
        runs.append(("asked, one shared network", 1.0, replace(ctx, options={**ctx.options, "prune.split": 0})))
    for label, f, sub in runs:
        if not is_quiet():
            stderr_console.print(f"[dim]pareto: {label}[/dim]")
        try:
            program = rerun(start, names[first:last + 1], sub)
        except KdccError as e:
            points.append({"label": label, "factor": f, "unreachable": str(e)})
            continue
        points.append(score_point(label, f, program, ctx, probe, env, episodes, seed))
    points.sort(key=lambda p: (p["factor"], p["label"]))
    metric = budget_metric(ctx.budget)
    mark_front(points, metric)
    teacher = baseline(ctx.teacher, REPORT.first(episodes, seed - REPORT.start), episodes, env)
    teacher_m = result.records[0].metrics
    return {"points": points, "episodes": episodes, "seed": seed, "metric": metric,
            "teacher": {"return": round(teacher.teacher_mean, 3), "latency_us": teacher_m["latency_us"],
                        "flops": teacher_m["flops"]}}


def _reached(cell):
    """A cell of a reached point; an unreachable point shows only its label and why."""
    return lambda p: "" if "unreachable" in p else cell(p)


PARETO_COLUMNS = (
    Column("label", "budget", align="left"),
    Column("width", "agent width", align="left",
           cell=lambda p: "unreachable" if "unreachable" in p else f"{p['kind']} {p['width']}"),
    Column("flops", "FLOPs/step", cell=_reached(lambda p: f"{p['flops']:,}")),
    Column("latency_us", "est. µs", cell=_reached(lambda p: f"{p['latency_us']:.2f} ({p['device']})")),
    Column("energy_uj", "est. µJ", cell=_reached(lambda p: f"{p['energy_uj']:.2f}")),
    Column("agreement", "action agree", cell=_reached(lambda p: f"{p['agreement']:.3f}")),
    Column("return", "team return", cell=_reached(lambda p: f"{p['return']:.2f} ± {p['return_std']:.2f}")),
    Column("on_front", "front", align="left", cell=_reached(lambda p: "●" if p["on_front"] else "")),
)


def pareto_section(sweep: dict[str, Any], title: str = "Budget vs score") -> Section:
    """The sweep's table and how to read it, for report.md, report.html and the terminal."""
    t = sweep["teacher"]
    note = (f"Budget: the one asked for (1×) scaled by each factor; team return: mean ± std over "
            f"{sweep['episodes']} MPE episodes, seeds {sweep['seed']}–{sweep['seed'] + sweep['episodes'] - 1}; "
            f"the teacher scores {t['return']:.2f} on them ({t['flops']:,} FLOPs, est. {t['latency_us']:.2f} µs).")
    return Section(title, (Table(PARETO_COLUMNS, tuple(sweep["points"]), title), Paragraph(text(note))))


_AXES = {"flops": "FLOPs per team step", "bytes": "bytes moved per team step", "latency_us": "estimated latency per team step (µs)",
         "energy_uj": "estimated energy per team step (µJ)"}


def pareto_figure(sweep: dict[str, Any]):
    """Team return against the budget's metric (the front is drawn there) and against estimated latency."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), layout="constrained")
    pts = [p for p in sweep["points"] if "unreachable" not in p]
    metric = sweep["metric"]
    keys = [metric] + (["latency_us"] if metric != "latency_us" else ["flops"])
    for ax, key in zip(fig.subplots(1, 2, sharey=True), keys):
        if key == metric:
            front = sorted((p for p in pts if p["on_front"]), key=lambda p: p[key])
            ax.plot([p[key] for p in front], [p["return"] for p in front], "-", color="#c44e52", lw=1.5,
                    label="Pareto front")
        for p in pts:
            style = {"asked": ("o", "#c44e52"), "asked, one shared network": ("s", "#55a868")}.get(
                p["label"], ("o", "#4c72b0"))
            ax.errorbar(p[key], p["return"], yerr=p["return_std"] / sweep["episodes"] ** 0.5, fmt=style[0],
                        color=style[1], capsize=3)
            ax.annotate(f"{p['label']} {p['width']}", (p[key], p["return"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        ax.axhline(sweep["teacher"]["return"], ls="--", color="gray", label="teacher")
        ax.set_xlabel(_AXES[key] + (f" on {pts[0]['device']}" if pts and key not in ("flops", "bytes") else ""))
        if key in ("flops", "bytes"):
            ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.axes[0].set_ylabel("team return (mean ± s.e.)")
    fig.suptitle(f"budget vs score ({sweep['episodes']} MPE episodes per point)")
    return fig
