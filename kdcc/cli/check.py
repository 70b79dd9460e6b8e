"""`kdcc check RECORD --against GOLDEN`: which pass moved, and how.

Compares two `kdcc compile --record` directories pass by pass (the logic is in
kdcc/record_compare.py) and reports the first pass whose graph text, metrics
or probe outputs diverge beyond tolerance: a unified diff of its graph text, a
table of metric deltas, the decisions that changed and the probe's largest
differences. Exit 0 when nothing diverges, 1 when a pass does, 2 on bad input.
`--update` replaces GOLDEN with RECORD, on purpose, atomically.

Nothing heavy is imported at module level: `kdcc --help` builds this parser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "render_comparison", "comparison_dict"]

_DIFF_LINES = 200  # longer graph diffs are cut; the files are named for a full `diff -u`

_DESCRIPTION = """Compare two records written by `kdcc compile --record DIR` pass by pass, in pipeline order:
program.txt exactly, metrics.json within --metric-tol (relative), decisions exactly (floats within
tolerance), probe.npz within --rtol/--atol (greedy actions exactly). Reports the first pass that
diverges with a diff of its graph text and a table of metric deltas. Exit status: 0 no pass diverges,
1 a pass diverges, 2 bad input (missing directory, not a record, different pipelines)."""


def add_parser(sub, common) -> None:
    """Register the `check` subcommand (kept here so cli.py stays a thin list of commands)."""
    import argparse

    ch = sub.add_parser("check", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="compare a compile record with a golden record pass by pass; name the first "
                        "pass that diverges", description=_DESCRIPTION)
    ch.add_argument("record", help="record directory (`kdcc compile --record DIR`) or a bundle holding record/")
    ch.add_argument("--against", required=True, metavar="GOLDEN", help="golden record directory")
    ch.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance on probe outputs")
    ch.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance on probe outputs and metrics")
    ch.add_argument("--metric-tol", type=float, default=1e-3, help="relative tolerance on metrics and on "
                    "float decisions")
    ch.add_argument("--update", action="store_true", help="replace GOLDEN with RECORD (after reporting what "
                    "changed); exit 0")
    ch.add_argument("--json", action="store_true", help="print one JSON object")
    ch.set_defaults(func=run)


def run(args) -> int:
    from kdcc.core.errors import KdccError
    from kdcc.reports.record_compare import Tolerances, compare_records

    for name in ("rtol", "atol", "metric_tol"):
        if not getattr(args, name) >= 0:
            raise KdccError(f"--{name.replace('_', '-')}: must be ≥ 0, got {getattr(args, name)}")
    tol = Tolerances(args.rtol, args.atol, args.metric_tol)
    if args.update:
        return _update(args, tol)
    cmp = compare_records(args.record, args.against, tol)
    if args.json:
        print(json.dumps(comparison_dict(cmp), sort_keys=True))
    else:
        render_comparison(cmp, _console(), brief=args.quiet)
    return 1 if cmp.first else 0


def _update(args, tol) -> int:
    from kdcc.core.errors import KdccError
    from kdcc.core.fileio import atomic_write_tree
    from kdcc.reports.record_compare import compare_records, load_record, record_tree

    rec = load_record(args.record, "record")
    golden = Path(args.against)
    if golden.resolve() == rec.path.resolve():
        raise KdccError(f"--update: {golden} is the record itself")
    if golden.exists() and not golden.is_dir():
        raise KdccError(f"--update: golden {golden} exists and is not a directory")
    is_record = (golden / "manifest.json").is_file()
    if golden.is_dir() and any(golden.iterdir()) and not is_record:
        raise KdccError(f"--update: golden {golden} is a non-empty directory that is not a record; not replacing it")
    if not golden.resolve().parent.is_dir():
        raise KdccError(f"--update: parent directory of {golden} does not exist")
    if is_record and not args.quiet and not args.json:
        try:
            render_comparison(compare_records(rec.path, golden, tol), _console(), brief=False)
        except KdccError as e:  # a different pipeline: replacing it is what --update is for
            print(f"note: {e}")
    atomic_write_tree(golden, record_tree(rec))
    if args.json:
        print(json.dumps({"updated": str(golden), "from": str(rec.path), "passes": rec.passes}, sort_keys=True))
    elif not args.quiet:
        print(f"updated golden {golden} from {rec.path} ({len(rec.passes)} passes)")
    return 0


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, highlight=False, soft_wrap=True)


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
