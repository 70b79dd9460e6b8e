"""`kdcc profile`: the cost model's per-layer table of one team step on every device of a target."""

from __future__ import annotations

import argparse
import json
import sys

from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("profile", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="per-layer FLOPs, bytes, estimated latency and energy of a team step on a target",
                        description="Cost-model table of one team step (all agents + mixer) on every device "
                        "of the target, and which device the model recommends.")
    p.add_argument("teacher", help=TEACHER_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--target", default="orin", help="profile name (orin, orin-cpu, orin-gpu, orin-nano, "
                    "host) or a path to a .toml profile")
    p.add_argument("--fused", action="store_true", help="profile the fused team graph (agents batched)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.api import profile
    from kdcc.targets.profile_table import render_profile_table

    teacher, table = profile(args.teacher, args.target, fused=args.fused, config=args.config)
    if args.json:
        rows = [{"node": r.node, "kind": r.kind, "flops": r.flops, "param_bytes": r.param_bytes,
                 "act_bytes": r.act_bytes, "fused": r.fused,
                 **{f"{d}.latency_us": c.latency_us for d, c in r.per_device.items()},
                 **{f"{d}.energy_uj": c.energy_uj for d, c in r.per_device.items()}}
                for r in (*table.rows, table.call, table.total)]
        print(json.dumps({"target": table.target, "best_device": table.best_device, "reason": table.reason,
                          "params": teacher.param_count(), "rows": rows}, sort_keys=True))
        return 0
    from rich.console import Console

    render_profile_table(table, Console(width=None if sys.stdout.isatty() else 150))
    print(f"parameters: {teacher.param_count():,} ({4 * teacher.param_count():,} bytes fp32)")
    return 0
