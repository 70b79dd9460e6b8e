"""What `kdcc check` reports: the comparison of two records (kdcc.reports.record_compare) for people and as JSON,
and the replacement of a golden record by a new one.

The human form names the verdict of each pass up to the first divergence,
then that pass's graph diff (cut after a few hundred lines: the files are
named for a full `diff -u`), its metric deltas, the decisions that changed and
the probe's largest differences. rich is imported when a report is rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_tree
from kdcc.reports.record_compare import Comparison, Record, Tolerances, compare_records, load_record, record_tree

__all__ = ["render_comparison", "comparison_dict", "update_golden"]

_DIFF_LINES = 200


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def render_comparison(cmp, console, brief: bool = False) -> None:
    """The human report: verdict per pass up to the first divergence, then its diff, tables and notes."""
    from rich.table import Table
    from rich.text import Text

    first, tol = cmp.first, cmp.tolerances
    if brief:
        console.print(f"DIVERGED at {first.label}: {', '.join(first.reasons())}" if first else
                      f"OK: {len(cmp.diffs)} passes match {cmp.golden}")
        return
    console.print(f"kdcc check: {cmp.record} against golden {cmp.golden} ({len(cmp.diffs)} passes; rtol {tol.rtol:g}, "
                  f"atol {tol.atol:g}, metric-tol {tol.metric_tol:g})")
    for note in cmp.notes:
        console.print(f"note: manifests differ: {note}")
    for d in cmp.diffs:
        if d is first:
            console.print(Text(f"  ✗ {d.label}: {', '.join(d.reasons())}", style="bold red"))
            break
        console.print(f"  ✓ {d.label}")
    if first is None:
        console.print(Text(f"OK: no pass diverges from {cmp.golden}", style="bold green"))
        return
    console.print(Text(f"\nfirst divergence: pass {first.index:02d} {first.name}", style="bold"))
    if first.text_diff:
        lines = first.text_diff.splitlines()
        console.print("graph text (golden → record):")
        for line in lines[:_DIFF_LINES]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" \
                if line.startswith("@@") else None
            console.print(Text(line, style=style))
        if len(lines) > _DIFF_LINES:
            console.print(f"… {len(lines) - _DIFF_LINES} more diff lines")
    else:
        console.print("graph text: identical")
    if first.metrics:
        table = Table(title=f"metric deltas after {first.name} (✗ beyond --metric-tol)", title_justify="left")
        for h in ["metric", "golden", "record", "Δ%", ""]:
            table.add_column(h, justify="left" if h == "metric" else "right")
        for m in first.metrics:
            pct = m.percent
            table.add_row(m.key, _fmt(m.before), _fmt(m.after), "" if pct is None else f"{pct:+.3g}%",
                          "" if m.within else "✗")
        console.print(table)
    else:
        console.print("metrics and fidelity: identical")
    if first.decisions:
        console.print("decisions that differ (golden → record):")
        for line in first.decisions[:20]:
            console.print(f"  {line}")
        if len(first.decisions) > 20:
            console.print(f"  … {len(first.decisions) - 20} more")
    probe = Table(title="probe outputs: max |record − golden|", title_justify="left")
    for h in ["array", "max |Δ|", "tolerance", ""]:
        probe.add_column(h, justify="left" if h == "array" else "right")
    for k, p in first.probe.items():
        if "problem" in p:
            probe.add_row(k, "-", p["problem"], "✗")
        elif "mismatched" in p:
            probe.add_row(k, "-", f"exact ({p['mismatched']}/{p['size']} differ)",
                          "" if p["within"] else "✗")
        else:
            probe.add_row(k, _fmt(p["max_abs_diff"]), f"rtol {tol.rtol:g}, atol {tol.atol:g}",
                          "" if p["within"] else "✗")
    console.print(probe)
    later = [d.label for d in cmp.diverged if d is not first]
    if later:
        console.print(f"later passes that also differ (they inherit it): {', '.join(later)}")
    console.print(Text(f"DIVERGED at {first.label}", style="bold red"))


def _finite(x: float | None) -> float | None:
    return x if x is None or abs(x) != float("inf") else None


def comparison_dict(cmp) -> dict[str, Any]:
    """The report as JSON-ready data (`kdcc check --json`)."""

    def one(d):
        return {"index": d.index, "name": d.name, "reasons": d.reasons(), "text_diff": d.text_diff,
                "metrics": [{"key": m.key, "golden": m.before, "record": m.after, "percent": _finite(m.percent),
                             "within": m.within} for m in d.metrics],
                "decisions": d.decisions, "probe": d.probe}

    first = cmp.first
    return {"record": str(cmp.record), "golden": str(cmp.golden), "passes": cmp.passes, "notes": cmp.notes,
            "tolerances": cmp.tolerances.__dict__, "status": "diverged" if first else "ok",
            "first_divergence": one(first) if first else None,
            "diverged": [d.label for d in cmp.diverged]}


def update_golden(record: str | Path, golden: str | Path, tol: Tolerances,
                  show: Callable[[Comparison], None] | None = None) -> Record:
    """Replace `golden` by `record`, atomically; `show` first sees what changed when golden is a record.

    Refuses to replace the record itself, a file, or a non-empty directory that is not a record.
    """
    rec = load_record(record, "record")
    golden = Path(golden)
    if golden.resolve() == rec.path.resolve():
        raise KdccError(f"--update: {golden} is the record itself")
    if golden.exists() and not golden.is_dir():
        raise KdccError(f"--update: golden {golden} exists and is not a directory")
    is_record = (golden / "manifest.json").is_file() and not (golden / "profile.json").is_file()  # not a bundle
    if golden.is_dir() and any(golden.iterdir()) and not is_record:
        raise KdccError(f"--update: golden {golden} is a non-empty directory that is not a record; not replacing it")
    if not golden.resolve().parent.is_dir():
        raise KdccError(f"--update: parent directory of {golden} does not exist")
    if is_record and show is not None:
        try:
            show(compare_records(rec.path, golden, tol))
        except KdccError as e:  # a different pipeline: replacing it is what --update is for
            print(f"note: {e}")
    atomic_write_tree(golden, record_tree(rec))
    return rec
