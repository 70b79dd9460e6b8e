"""`kdcc certify`: per role, the distribution of certified ε over the agent steps a policy takes; with `--episode`,
the share of whole episodes certified for the whole team (the hidden state carried through the recurrence)."""

from __future__ import annotations

import argparse
import json
import sys

from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP

__all__ = ["add_parser", "run"]

EPS_DEFAULT = "0.0001,0.001,0.01,0.1"


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
    p.add_argument("--episode", action="store_true",
                   help="certify whole episodes for the whole team: no perturbation within ε at any step changes "
                   "any agent's action at any step (the hidden state bounded through the recurrence)")
    p.add_argument("--eps", default=EPS_DEFAULT, metavar="LIST",
                   help="with --episode: the radii to certify at, comma-separated")
    p.add_argument("--perturb", default="all", metavar="all|agent:I",
                   help="with --episode: whose observations move: every agent's, or agent I's only")
    p.add_argument("--bisect", action="store_true",
                   help="with --episode: also bisect for each episode's certified radius (about ten more passes)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from kdcc.api import certify
    from kdcc.reports.certify import certify_section
    from kdcc.reports.terminal import print_section

    if args.episode:
        return run_episode(args)
    r = certify(args.policy, teacher_path=args.teacher, episodes=args.episodes, eps_scale=args.eps_scale,
                method=args.method, config=args.config, teacher_config=args.teacher_config)
    if args.json:
        print(json.dumps(r.to_dict(), sort_keys=True))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 150, highlight=False)
    print_section(console, certify_section(r.summary, r.method, r.scale, r.episodes))
    return 0


def run_episode(args) -> int:
    from rich.console import Console

    from kdcc.api import certify_episodes
    from kdcc.marl.episode_certify import parse_eps
    from kdcc.reports.certify import episode_certify_section
    from kdcc.reports.terminal import print_section

    r = certify_episodes(args.policy, parse_eps(args.eps), args.teacher, args.episodes, args.perturb, args.eps_scale,
                         args.method, args.bisect, args.config, args.teacher_config).to_dict()
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 150, highlight=False)
    print_section(console, episode_certify_section(r))
    return 0
