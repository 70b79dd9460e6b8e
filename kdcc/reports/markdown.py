"""report.md: what each pass did to cost and fidelity, and what the student is.

The report goes into the bundle, which must be byte-identical for the same
inputs and seed, so it holds no wall times (those are printed and recorded).
"""

from __future__ import annotations

from typing import Any, Sequence

from kdcc.passes.manager import PassRecord

__all__ = ["markdown_report", "summary_rows"]


def summary_rows(records: Sequence[PassRecord]) -> list[list[str]]:
    rows = []
    for r in records:
        m, f = r.metrics, r.fidelity
        rows.append([f"{r.index:02d}", r.name, f"{m['flops']:,}", f"{m['params']:,}",
                     f"{m['bytes']:,}", f"{m['latency_us']:.2f} ({m['device']})", f"{m['energy_uj']:.2f}",
                     f"{f['max_abs_dq']:.3g}", f"{f['action_agreement']:.3f}", f"{f['mean_abs_dq_tot']:.3g}"])
    return rows


_HEAD = ["#", "pass", "FLOPs/step", "params", "bytes/step", "est. µs", "est. µJ", "max |ΔQ|",
         "action agree", "mean |ΔQ_tot|"]


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _decision_line(d: dict[str, Any]) -> str:
    skip = {"pass", "kept_fc1", "kept_rnn", "curve", "options"}
    parts = [f"{k}={v}" for k, v in d.items() if k not in skip]
    return ", ".join(parts) if parts else "(no decisions)"


def markdown_report(teacher_path: str, target: str, records: Sequence[PassRecord], *,
                    extra_sections: Sequence[tuple[str, str]] = ()) -> str:
    first, last = records[0].metrics, records[-1].metrics
    flops_x = first["flops"] / max(last["flops"], 1)
    bytes_cut = 1 - last["param_bytes"] / max(first["param_bytes"], 1)
    out = [
        f"# kdcc compile report: `{teacher_path}` → target `{target}`",
        "",
        f"- FLOPs per team step: {first['flops']:,} → {last['flops']:,} (**{flops_x:.1f}× fewer**)",
        f"- parameter bytes: {first['param_bytes']:,} → {last['param_bytes']:,} (**{100 * bytes_cut:.1f}% fewer**)",
        f"- estimated latency on {last['device']}: {first['latency_us']:.2f} µs → {last['latency_us']:.2f} µs; "
        f"energy {first['energy_uj']:.2f} µJ → {last['energy_uj']:.2f} µJ per step",
        f"- fidelity on the probe (teacher's trajectories): greedy-action agreement "
        f"{records[-1].fidelity['action_agreement']:.3f}, max |ΔQ| {records[-1].fidelity['max_abs_dq']:.3g}, "
        f"mean |ΔQ_tot| {records[-1].fidelity['mean_abs_dq_tot']:.3g}",
        "",
        "## Pass by pass",
        "",
        _table(_HEAD, summary_rows(records)),
        "",
        "## Decisions",
        "",
    ]
    out += [f"- **{r.name}**: {_decision_line(r.decisions)}" for r in records[1:]]
    for title, body in extra_sections:
        out += ["", f"## {title}", "", body]
    return "\n".join(out) + "\n"
