"""report.html: the compile report with plots, one self-contained file (PNG plots inlined as base64).

Plots: cost per pass (FLOPs, bytes moved, estimated latency and energy on the
device the cost model picked), fidelity per pass (greedy-action agreement,
max |ΔQ|, mean |ΔQ_tot| against the teacher on the probe) and the loss curves
of every distill pass; with `compile --pareto`, the budget-vs-score front. The file goes into the bundle, which must be
byte-identical for the same inputs, so: matplotlib's default style whatever
the user's matplotlibrc says, a fixed size and dpi, PNGs without the
`Software` text chunk (Agg writes no timestamp), no wall times.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Callable, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.markdown import summary_rows

__all__ = ["html_report", "report_figures"]

_DPI = 100
_HEAD = ["#", "pass", "FLOPs/step", "params", "bytes/step", "est. µs", "est. µJ", "max |ΔQ|",
         "action agree", "mean |ΔQ_tot|"]
_COST = [("flops", "FLOPs per team step"), ("bytes", "bytes moved per team step"),
         ("latency_us", "estimated latency (µs)"), ("energy_uj", "estimated energy (µJ)")]
_CSS = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
td:nth-child(2),th:nth-child(2){text-align:left}img{max-width:100%}
pre{background:#f4f4f4;padding:1em;overflow-x:auto}"""


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


def _table(records: Sequence[PassRecord]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEAD)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in summary_rows(records))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _decisions(records: Sequence[PassRecord]) -> str:
    skip = {"pass", "kept_fc1", "kept_rnn", "curve", "options"}
    items = []
    for r in records[1:]:
        parts = ", ".join(f"{k}={v}" for k, v in r.decisions.items() if k not in skip) or "(no decisions)"
        items.append(f"<li><b>{html.escape(r.name)}</b>: {html.escape(parts)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _markdown_block(text: str) -> str:
    """The markdown the extra sections are written in: pipe tables become tables, other lines paragraphs."""
    out, rows = [], []

    def flush():
        if rows:
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows
                     if not set(r.replace("|", "").strip()) <= {"-", ":"}]
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            rows.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            rows.append(line)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def html_report(teacher_name: str, target: str, records: Sequence[PassRecord], *,
                extra_sections: Sequence[tuple[str, str]] = (),
                extra_figures: dict[str, Callable[[], Any]] | None = None) -> str:
    """The report as one HTML document (extra sections are markdown: tables and paragraphs;
    extra figures are made by the given functions, under the report's fixed matplotlib style)."""
    import matplotlib

    first, last = records[0].metrics, records[-1].metrics
    fid = records[-1].fidelity
    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # the user's matplotlibrc must not change the bundle's bytes
        images = {name: _png(fig) for name, fig in report_figures(records).items()}
        images.update({name: _png(make()) for name, make in (extra_figures or {}).items()})
    summary = [
        f"FLOPs per team step: {first['flops']:,} → {last['flops']:,} "
        f"(<b>{first['flops'] / max(last['flops'], 1):.1f}× fewer</b>)",
        f"parameter bytes: {first['param_bytes']:,} → {last['param_bytes']:,}",
        f"estimated latency on {html.escape(str(last['device']))}: {first['latency_us']:.2f} µs → "
        f"{last['latency_us']:.2f} µs; energy {first['energy_uj']:.2f} µJ → {last['energy_uj']:.2f} µJ per step",
        f"fidelity on the probe: greedy-action agreement {fid['action_agreement']:.3f}, "
        f"max |ΔQ| {fid['max_abs_dq']:.3g}, mean |ΔQ_tot| {fid['mean_abs_dq_tot']:.3g}",
    ]
    title = f"kdcc compile report: {html.escape(teacher_name)} → target {html.escape(target)}"
    body = [f"<h1>{title}</h1>", "<ul>" + "".join(f"<li>{s}</li>" for s in summary) + "</ul>",
            "<h2>Pass by pass</h2>", _table(records), "<h2>Decisions</h2>", _decisions(records), "<h2>Plots</h2>"]
    body += [f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>' for name, data in images.items()]
    for heading, text in extra_sections:
        body += [f"<h2>{html.escape(heading)}</h2>", _markdown_block(text)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
