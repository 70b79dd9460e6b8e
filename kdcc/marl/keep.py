"""The decision rule of `--keep FRACTION`: does a student keep the team's score, and which one to take.

Every candidate student and the teacher play the same selection seeds (never
seen in training, kdcc.marl.scoring), so their returns pair episode by episode;
the normalised score and its paired standard error SE are kdcc.marl.scoring's.
A candidate keeps the score when score − z·SE ≥ FRACTION. With
z = 0 (`kdcc compile`'s default) that is the estimate itself, its SE reported
beside it; z = 1 (`--keep-z 1`) keeps a candidate only when one standard error
below its estimate still clears the bar, so noise does not accept a worse
student, at the price of wider students: with 100 episodes the paired SE of a
good student is 0.02-0.04, so at FRACTION 0.97 only a student that scores like
the teacher itself passes. Among the candidates that keep it, the cheapest (by
the budget's metric) is chosen; when none does, a one-line error names the best
score reached.
"""

from __future__ import annotations

from typing import Any, Sequence

from kdcc.core.errors import KdccError

__all__ = ["keeps", "choose"]


def keeps(point: dict[str, Any], fraction: float, z: float = 0.0) -> bool:
    """score − z·SE ≥ fraction."""
    return point["score"] - z * point["se"] >= fraction


def choose(points: Sequence[dict[str, Any]], fraction: float, metric: str = "flops", z: float = 0.0) -> dict[str, Any]:
    """The cheapest point (by `metric`) that keeps the score; a KdccError naming the best score when none does."""
    kept = [p for p in points if keeps(p, fraction, z)]
    if not kept:
        best = max(points, key=lambda p: p["score"] - z * p["se"], default=None)
        reached = (f"best: {best['score']:.3f} ± {best['se']:.3f} at {metric} {best[metric]:,}" if best
                   else "no student was evaluated")
        raise KdccError(f"--keep {fraction:g}: no student keeps score − {z:g}·SE ≥ {fraction:g} ({reached})")
    return min(kept, key=lambda p: (p[metric], -p["score"]))
