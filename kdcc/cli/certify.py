"""`kdcc certify`: per role, the distribution of certified ε over the agent steps a policy takes."""

from __future__ import annotations

import argparse
import json
import sys

from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("certify", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="certified robustness of every agent step to observation noise (IBP / CROWN bounds)",
                       description="Run the policy's robots through fixed episodes and, for every step, find the "
                       "largest L-infinity radius of its own observation (in the teacher's per-feature std, or raw "
                       "units) within which its greedy action provably does not change; report the distribution "
                       "per role, for a teacher and a compiled student side by side.")
    p.add_argument("policy", help="bundle directory, or a teacher: " + TEACHER_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--teacher", help="the teacher to certify beside the policy (it sets the std scale)")
    p.add_argument("--teacher-config", help="--config for the --teacher input")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--eps-scale", choices=("std", "none"), default="std",
                   help="std: ε in units of each observation feature's std on the teacher's steps; none: raw units")
    p.add_argument("--method", choices=("ibp", "crown"), default="crown")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from kdcc.api import certify
    from kdcc.reports.certify import certify_section
    from kdcc.reports.terminal import print_section

    r = certify(args.policy, teacher_path=args.teacher, episodes=args.episodes, eps_scale=args.eps_scale,
                method=args.method, config=args.config, teacher_config=args.teacher_config)
    if args.json:
        print(json.dumps(r.to_dict(), sort_keys=True))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 150, highlight=False)
    print_section(console, certify_section(r.summary, r.method, r.scale, r.episodes))
    return 0
