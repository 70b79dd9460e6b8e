"""Certified robustness sections: per role, the distribution of certified ε over the visited agent steps.

A row is one policy's role: how many steps, the median and 10th percentile of the
certified ε, and the fraction of steps certified at a few radii (ε ≥ t). With a
teacher beside a student the two are rows of one table, on one scale (the teacher's
observation std), so a row pair reads as "how much did compression cost in robustness".
The summary is plain JSON, the form `--json` prints and profile.json stores (`certified_eps`).
`kdcc certify` prints `certify_section`; the compile report carries `compile_certify_section`
(the compile's certify stage, kdcc.flow.certify_compile), with the score against certified ε
when the student was trained for robustness (distill.w_robust > 0). `kdcc certify --episode`
prints `episode_certify_section`: per ε, the share of whole episodes certified for the whole team
(kdcc.marl.episode_certify), policies side by side.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from kdcc.ir.bounds.certify import EPS_MAX
from kdcc.passes.distill import DistillConfig
from kdcc.reports.document import Column, Paragraph, Section, Table, bold, code, text

__all__ = ["THRESHOLDS", "eps_summary", "certify_section", "compile_certify_section", "robust_weight",
           "score_eps_figure", "episode_certify_section"]

THRESHOLDS = (0.01, 0.05, 0.1, 0.5)


def eps_summary(eps: np.ndarray) -> dict[str, Any]:
    """{steps, median, p10, mean, certified_at: {t: fraction of steps with ε ≥ t}} of one role's ε."""
    eps = np.asarray(eps, np.float64)
    return {"steps": int(eps.size), "median": round(float(np.median(eps)), 6),
            "p10": round(float(np.percentile(eps, 10)), 6), "mean": round(float(eps.mean()), 6),
            "certified_at": {str(t): round(float((eps >= t).mean()), 4) for t in THRESHOLDS}}


def certify_section(results: Mapping[str, Mapping[str, Mapping[str, Any]]], method: str, scale: str,
                    episodes: int) -> Section:
    """`results`: {policy label: {role: eps_summary}}, in the order to show."""
    rows = [{"policy": label, "role": role, **s} for label, roles in results.items() for role, s in roles.items()]
    columns = (Column("policy", "policy", align="left"), Column("role", "role", align="left"),
               Column("steps", "steps"), Column("median", "median ε", cell=lambda r: f"{r['median']:.4g}"),
               Column("p10", "10th pct ε", cell=lambda r: f"{r['p10']:.4g}"),
               *(Column(f"at.{t}", f"ε≥{t}", cell=lambda r, t=t: f"{r['certified_at'][str(t)]:.0%}")
                 for t in THRESHOLDS))
    return Section("Certified robustness", (Table(columns, tuple(rows), "Certified ε per agent step"),
                                            Paragraph(text(_note(method, scale, episodes)))))


def _note(method: str, scale: str, episodes: int) -> str:
    unit = "the teacher's observation std per feature" if scale == "std" else "observation units"
    return (f"Certified ε of every agent step on {_episodes(episodes)} (the states each policy visits itself): "
            f"the largest L∞ radius, in {unit}, of the agent's own observation within which its greedy action "
            f"provably stays ({method.upper()} bounds on every margin q_greedy − q_a; hidden state and last "
            f"action held fixed; bisection to 0.1%).")


def _episodes(n: int) -> str:
    return f"{n} fixed episode{'' if n == 1 else 's'}"


def robust_weight(options: Mapping[str, Any]) -> float:
    """distill.w_robust of a compile's pass options (0: the student was not trained for robustness)."""
    return float(options.get("distill.w_robust", 0.0))


def _score_table(certified: Mapping[str, Any], options: Mapping[str, Any]) -> tuple:
    """With the robust term on: each policy's mean team return beside the ε of all its agent steps."""
    team = certified["team"]
    rows = tuple({"policy": label, **team[label]} for label in ("teacher", "student"))
    at = str(THRESHOLDS[2])
    columns = (Column("policy", "policy", align="left"),
               Column("team_return", "team return", cell=lambda r: f"{r['team_return']:.2f}"),
               Column("median", "median ε", cell=lambda r: f"{r['median']:.4g}"),
               Column("p10", "10th pct ε", cell=lambda r: f"{r['p10']:.4g}"),
               Column("at", f"ε≥{at}", cell=lambda r: f"{r['certified_at'][at]:.0%}"))
    lead = text(bold("Score against certified ε."), " The student was trained with the robust term (",
                code(f"distill.w_robust={robust_weight(options):g}"), ", ",
                code(f"distill.robust_eps={options.get('distill.robust_eps', DistillConfig.robust_eps):g}"),
                "): each policy's mean team "
                f"return on the same {_episodes(certified['episodes'])}, beside the certified ε of all its agent "
                "steps (every role).")
    return Paragraph(lead), Table(columns, rows, "Score against certified ε")


def compile_certify_section(certified: Mapping[str, Any], options: Mapping[str, Any]) -> Section:
    """The compile's certify stage (kdcc.flow.certify_compile's dict): per student role the teacher's and the
    student's ε on the same agents; with distill.w_robust > 0 (`options`: the compile's pass options), also each
    policy's team return beside its ε over all its steps: what the robust term bought, and what it cost."""
    roles = certified["roles"]
    results = {label: {role: row[label] for role, row in roles.items()} for label in ("teacher", "student")}
    section = certify_section(results, certified["method"], certified["eps_scale"], certified["episodes"])
    blocks = [*section.blocks, Paragraph(text(
        "Each student role is paired with the teacher's steps of the same agents; the same figures are each role's ",
        code("certified_eps"), " in profile.json. ", code("--certify-episodes N"), " sets the episodes (0: none)."))]
    if any(row[label]["median"] >= EPS_MAX for row in roles.values() for label in ("teacher", "student")):
        blocks.append(Paragraph(text(f"ε = {EPS_MAX:g} is the search's cap: nothing within it changes the action "
                                     "(with the std scale, also where none of the role's observation features "
                                     "varied on the teacher's steps, so none moved).")))
    if robust_weight(options) > 0:
        blocks += _score_table(certified, options)
    return Section(section.title, tuple(blocks))


def score_eps_figure(certified: Mapping[str, Any]):
    """Team return against median certified ε (the bar from the 10th percentile), teacher and student."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    for label, color in (("teacher", "gray"), ("student", "#c44e52")):
        t = certified["team"][label]
        ax.errorbar(t["median"], t["team_return"], xerr=[[t["median"] - t["p10"]], [0.0]], fmt="o", color=color,
                    capsize=3, label=label)
    ax.set_xlabel(f"certified ε ({'obs std' if certified['eps_scale'] == 'std' else 'obs units'}): median, "
                  "bar from the 10th percentile")
    n = certified["episodes"]
    ax.set_ylabel(f"team return ({'one episode' if n == 1 else f'mean of {n} episodes'})")
    ax.margins(x=0.2, y=0.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("Score against certified ε")
    return fig


def _first_loss(at: Mapping[str, Any]) -> str:
    """The median step at which the uncertified episodes' certificates were lost (– when all hold)."""
    steps = [lost["step"] for lost in at["lost"]]
    return f"t≈{float(np.median(steps)):.0f}" if steps else "–"


def _radius(value: float, grid: list[float], bisected: bool) -> str:
    """A largest certified ε; 0 from the grid alone means below its least positive ε."""
    positive = [e for e in grid if e > 0]
    return f"< {min(positive):.3g}" if value == 0 and not bisected and positive else f"{value:.3g}"


def episode_certify_section(result: Mapping[str, Any]) -> Section:
    """`result`: kdcc.marl.episode_certify's EpisodeCertifyResult.to_dict(); its policies in the order to show."""
    policies = list(result["policies"].items())
    grid = [at["eps"] for at in policies[0][1]["at"]]
    rows = tuple({"eps": e, **{f"p{i}": p["at"][k] for i, (_, p) in enumerate(policies)}} for k, e in enumerate(grid))
    columns = [Column("eps", "ε", cell=lambda r: f"{r['eps']:.4g}")]
    for i, (label, _) in enumerate(policies):
        columns += [Column(f"p{i}.certified", f"{label}: certified",
                           cell=lambda r, i=i: f"{r[f'p{i}']['certified']:.0%} ({r[f'p{i}']['certified_episodes']})"),
                    Column(f"p{i}.lost", "first loss", cell=lambda r, i=i: _first_loss(r[f"p{i}"])),
                    Column(f"p{i}.return", "return (certified)", cell=lambda r, i=i: (
                        "–" if r[f"p{i}"]["certified_return"] is None else f"{r[f'p{i}']['certified_return']:.2f}"))]
    quantiles = tuple({"policy": label, "eps_50": p["eps_50"], "eps_90": p["eps_90"], "return_mean": p["return_mean"]}
                      for label, p in policies)
    radii = (Column("policy", "policy", align="left"),
             *(Column(f"eps_{q}", f"ε ({q}% certified)", cell=lambda r, q=q: _radius(r[f"eps_{q}"], grid,
                                                                                      result["bisect"]))
               for q in (50, 90)),
             Column("return_mean", "team return (all)", cell=lambda r: f"{r['return_mean']:.2f}"))
    return Section("Certified episodes", (
        Table(tuple(columns), rows, "Episodes certified for the whole team, per ε"),
        Table(radii, quantiles, "The largest ε at which half and nine tenths of the episodes are certified"),
        Paragraph(text(_episode_note(result)))))


def _episode_note(result: Mapping[str, Any]) -> str:
    unit = ("each observation feature's std on the first policy's episodes (the teacher's, when given)"
            if result["eps_scale"] == "std" else "observation units")
    who = ("every agent's observation" if result["perturb"] == "all"
           else f"agent {result['perturb'].partition(':')[2]}'s observation only (the others exact)")
    first, last = result["seeds"]
    search = "bisection, to 10%" if result["bisect"] else "the grid's; --bisect to bisect"
    return (f"An episode is certified at ε when no perturbation of {who} within ε ({unit}, L∞) at any step can "
            f"change any agent's action at any step: {result['method'].upper()} bounds through the recurrence, the "
            f"hidden state in a box carried from step to step. {_episodes(result['episodes'])} (env seeds {first}–"
            f"{last}), each policy's own. First loss: the median step where an uncertified episode's certificate is "
            "first lost. A certified episode plays exactly as unperturbed, so its return is the one shown; an "
            "uncertified one has no return bound (MPE's rewards are distances, with no sound per-step bound), so no "
            f"team-return lower bound is reported. ε at 50% / 90%: the largest verified ({search}).")
