"""Per-agent capacity for heterogeneous teams: how wide each agent's own network should be.

When agents differ (speaker–listener: a speaker that sees 3 numbers and says one
of 3 words, a listener that sees 11 and moves), one shared width wastes the
budget on whichever agent needs less. The student gets one network per agent,
and the budget is shared out by a greedy knapsack on the cost model:

* value: agent i keeping its top-w units keeps a share V_i(w) of its importance
  (scores measured on that agent's own steps, the same Taylor-style scores the
  shared prune uses), normalised per agent so each agent's full width is worth 1;
* cost: the whole team step at those widths, on the target device, through the
  cost model, so an agent whose input is wider pays more for each unit;
* start every agent at the device's preferred multiple, then repeatedly grow
  the agent whose next `multiple` units buy the most value per unit of budget
  used (Σ_k Δcost_k / limit_k), while every limit still holds.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["importance_kept", "allocate_widths"]


def importance_kept(scores: tuple[torch.Tensor, torch.Tensor], width: int) -> float:
    """Share of an agent's importance (fc1 and rnn unit scores) its top-`width` units hold."""
    total = sum(float(s.sum()) for s in scores) or 1.0
    return sum(float(s.topk(min(width, len(s))).values.sum()) for s in scores) / total


def allocate_widths(scores: list[tuple[torch.Tensor, torch.Tensor]], widths_allowed: list[int],
                    cost: Callable[[tuple[int, ...]], dict[str, float]],
                    limits: dict[str, float]) -> tuple[tuple[int, ...], dict[str, float]] | None:
    """Widths per agent within `limits` (None if even the narrowest team does not fit), and their cost.

    `widths_allowed` ascending; `cost(widths)` returns the team step's cost for every key of `limits`.
    """
    fits = lambda c: all(c[k] <= v for k, v in limits.items())  # noqa: E731
    steps = [0] * len(scores)
    widths = tuple(widths_allowed[0] for _ in scores)
    current = cost(widths)
    if not fits(current):
        return None
    while True:
        best = None
        for i, s in enumerate(scores):
            if steps[i] + 1 >= len(widths_allowed):
                continue
            grown = widths[:i] + (widths_allowed[steps[i] + 1],) + widths[i + 1:]
            c = cost(grown)
            if not fits(c):
                continue
            gain = importance_kept(s, grown[i]) - importance_kept(s, widths[i])
            spent = sum(max(c[k] - current[k], 0.0) / v for k, v in limits.items())
            ratio = gain / max(spent, 1e-12)
            if best is None or ratio > best[0]:
                best = (ratio, i, grown, c)
        if best is None:
            return widths, current
        _, i, widths, current = best
        steps[i] += 1
