"""`kdcc check RECORD --against GOLDEN`: which pass moved, and how.

Compares two `kdcc compile --record` directories pass by pass (the comparison is
kdcc.reports.record_compare, its report kdcc.reports.check_report) and reports the first pass whose graph text, metrics
or probe outputs diverge beyond tolerance: a unified diff of its graph text, a
table of metric deltas, the decisions that changed and the probe's largest
differences. Exit 0 when nothing diverges, 1 when a pass does, 2 on bad input.
`--update` replaces GOLDEN with RECORD, on purpose, atomically.

Nothing heavy is imported at module level: `kdcc --help` builds this parser.
"""

from __future__ import annotations

import json
import sys

__all__ = ["add_parser", "run"]

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
    from kdcc.reports.check_report import comparison_dict, render_comparison
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
    from kdcc.reports.check_report import render_comparison, update_golden

    show = None if args.quiet or args.json else lambda cmp: render_comparison(cmp, _console(), brief=False)
    rec = update_golden(args.record, args.against, tol, show)
    if args.json:
        print(json.dumps({"updated": str(args.against), "from": str(rec.path), "passes": rec.passes}, sort_keys=True))
    elif not args.quiet:
        print(f"updated golden {args.against} from {rec.path} ({len(rec.passes)} passes)")
    return 0


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, highlight=False, soft_wrap=True)
