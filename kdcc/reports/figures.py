"""The compile report's plots: matplotlib figures, rendered to PNG the same way on every machine.

Plots: cost per pass (FLOPs, bytes moved, estimated latency and energy on the
device the cost model picked), fidelity per pass (greedy-action agreement,
max |ΔQ|, mean |ΔQ_tot| against the teacher on the probe) and the loss curves
of every distill pass; with `compile --pareto`, the budget-vs-score front. They
go into report.html, which is part of the bundle and must be byte-identical for
the same inputs, so: matplotlib's default style whatever the user's matplotlibrc
says, a fixed size and dpi, PNGs without the `Software` text chunk (Agg writes
no timestamp).
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable, Mapping, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.document import Image

__all__ = ["report_figures", "report_images"]

_DPI = 100
_COST = [("flops", "FLOPs per team step"), ("bytes", "bytes moved per team step"),
         ("latency_us", "estimated latency (µs)"), ("energy_uj", "estimated energy (µJ)")]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode()


def _short(v: float) -> str:
    """55,561 -> '55.6k': bar labels that fit."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def _labels(records: Sequence[PassRecord]) -> list[str]:
    return [f"{r.index:02d} {r.name}" for r in records]


def _cost_figure(records: Sequence[PassRecord]):
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    x = range(len(records))
    for ax, (key, title) in zip(axes.flat, _COST):
        values = [float(r.metrics[key]) for r in records]
        bars = ax.bar(x, values, color="#4c72b0")
        ax.bar_label(bars, [_short(v) for v in values], fontsize=7)
        ax.margins(y=0.12)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[1]:
        ax.set_xticks(list(x), _labels(records), rotation=45, ha="right", fontsize=8)
    fig.suptitle(f"cost per pass (latency and energy on {records[-1].metrics['device']})")
    return fig


def _fidelity_figure(records: Sequence[PassRecord]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    x = list(range(len(records)))
    left.plot(x, [r.fidelity["action_agreement"] for r in records], "o-", color="#55a868")
    left.set_ylim(-0.02, 1.02)
    left.set_title("greedy-action agreement with the teacher", fontsize=10)
    for key, label in (("max_abs_dq", "max |ΔQ|"), ("mean_abs_dq_tot", "mean |ΔQ_tot|")):
        right.plot(x, [r.fidelity[key] for r in records], "o-", label=label)
    right.set_yscale("symlog", linthresh=1e-5)
    right.set_title("error against the teacher (probe)", fontsize=10)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_xticks(x, _labels(records), rotation=45, ha="right", fontsize=8)
    fig.suptitle("fidelity per pass")
    return fig


def _curve_figure(record: PassRecord):
    from matplotlib.figure import Figure

    curve = record.decisions["curve"]
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    steps = [p["step"] for p in curve]
    for term in [k for k in curve[0] if k != "step"]:
        ax.plot(steps, [max(abs(float(p[term])), 1e-9) for p in curve],
                lw=2.2 if term == "total" else 1.2, label=term)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss term (unweighted; total is weighted)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=4)
    fig.suptitle(f"distillation loss curves ({record.index:02d} {record.name})")
    return fig


def report_figures(records: Sequence[PassRecord]) -> dict[str, Any]:
    """name -> matplotlib Figure, in report order."""
    figs = {"cost_per_pass": _cost_figure(records), "fidelity_per_pass": _fidelity_figure(records)}
    for r in records:
        if r.decisions.get("curve"):
            figs[f"distill_curve_{r.index:02d}"] = _curve_figure(r)
    return figs


def report_images(records: Sequence[PassRecord],
                  extra_figures: Mapping[str, Callable[[], Any]] | None = None) -> tuple[Image, ...]:
    """The report's figures and the extra ones (made by the given functions), as PNG images, in order."""
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # the user's matplotlibrc must not change the bundle's bytes
        figures = report_figures(records)
        images = [Image(name, _png(fig)) for name, fig in figures.items()]
        images += [Image(name, _png(make())) for name, make in (extra_figures or {}).items()]
    return tuple(images)
