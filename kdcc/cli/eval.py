"""`kdcc eval`: mean team return of a policy (teacher or bundle) in MPE, against random and the teacher."""

from __future__ import annotations

import argparse
import json

from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("eval", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="mean team return of a teacher or compiled bundle in MPE, vs a random policy",
                       description="Run greedy team episodes (env seeds SEED..SEED+N-1) and report the mean "
                       "team return (summed over steps and agents), a uniform random policy's on the same "
                       "seeds, and the normalised score when a teacher is known.")
    p.add_argument("policy", help="bundle directory, or a teacher: " + TEACHER_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", help="teacher to normalise the score against (any teacher input)")
    p.add_argument("--teacher-config", help="--config for the --teacher input")
    p.add_argument("--decentralised", action="store_true",
                   help="load each agent on its own (a bundle's per-robot libraries) and give it only its own "
                   "observation, as robots that exchange nothing per step")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.api import evaluate

    r = evaluate(args.policy, episodes=args.episodes, seed=args.seed, teacher_path=args.teacher,
                 config=args.config, teacher_config=args.teacher_config,
                 decentralised=args.decentralised)
    if args.json:
        print(json.dumps(r.to_dict(), sort_keys=True))
        return 0
    seeds = f"seeds {r.seed}–{r.seed + r.episodes - 1}"
    print(f"{r.policy}: mean team return {r.mean:.2f} ± {r.std:.2f} over {r.episodes} episodes ({seeds})")
    print(f"random policy: mean team return {r.random_mean:.2f} ± {r.random_std:.2f} (same seeds)")
    if r.teacher_mean is not None:
        print(f"teacher: mean team return {r.teacher_mean:.2f}")
    if r.normalised is not None:
        print(f"normalised score (R - R_random)/(R_teacher - R_random): {r.normalised:.3f}")
    return 0
