"""`kdcc certify`'s section: per role, the distribution of certified ε over the visited agent steps.

A row is one policy's role: how many steps, the median and 10th percentile of the
certified ε, and the fraction of steps certified at a few radii (ε ≥ t). With a
teacher beside a student the two are rows of one table, on one scale (the teacher's
observation std), so a row pair reads as "how much did compression cost in robustness".
The summary is plain JSON, the form `--json` prints and a profile.json would store.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["THRESHOLDS", "eps_summary", "certify_section"]

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
    unit = "the teacher's observation std per feature" if scale == "std" else "observation units"
    note = (f"Certified ε of every agent step on {episodes} fixed episodes (the states each policy visits itself): "
            f"the largest L∞ radius, in {unit}, of the agent's own observation within which its greedy action "
            f"provably stays ({method.upper()} bounds on every margin q_greedy − q_a; hidden state and last "
            f"action held fixed; bisection to 0.1%).")
    return Section("Certified robustness", (Table(columns, tuple(rows), "Certified ε per agent step"),
                                            Paragraph(text(note))))
