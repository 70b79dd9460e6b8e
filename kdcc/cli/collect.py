"""`kdcc collect`: teacher rollouts in MPE written as a dataset (docs/dataset-format.md)."""

from __future__ import annotations

import argparse

from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP
from kdcc.marl.seeds import COLLECT

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("collect", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="roll the teacher out in MPE and write a dataset (.npz)",
                       description="Record teacher rollouts (obs, state, actions, rewards, the teacher's "
                       "Q-values, hidden states and Q_tot) in the format of docs/dataset-format.md.")
    p.add_argument("teacher", help=TEACHER_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("-o", "--out", required=True, help="output .npz")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=COLLECT.start,
                   help="env seed of the first episode; the default is where a compile collects its own data, "
                        "seeds no score is measured on (kdcc.marl.scoring)")
    p.add_argument("--epsilon", type=float, default=0.1, help="probability of a random action, for coverage")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.api import collect

    data = collect(args.teacher, args.out, episodes=args.episodes, seed=args.seed, epsilon=args.epsilon,
                   config=args.config)
    if not args.quiet:
        print(f"wrote {args.out}: {len(data)} steps, {data.episodes} episodes")
    return 0
