"""`kdcc calibrate`: time compiled probe graphs on this machine and write a host profile."""

from __future__ import annotations

import argparse
import json

from kdcc.cli.args import add_rpc_args, remote_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("calibrate", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="measure this machine with compiled probe graphs and write a calibrated profile",
                        description="Compile small probe graphs for the host with TVM, time them the way a "
                        "bundle calls its library (one thread), and write the profile with the measured "
                        "call/kernel overheads, GEMM throughput and memory bandwidth. With --rpc-tracker/--rpc-key "
                        "(or --rpc), the probes are built for the profile's first device and timed on the board "
                        "through TVM RPC instead.")
    p.add_argument("--target", default="host", help="profile to start from (a host CPU profile)")
    p.add_argument("-o", "--out", default="host-calibrated.toml", help="profile file to write")
    p.add_argument("--calls", type=int, default=2000, help="timed calls per probe")
    add_rpc_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.targets.tvm.calibrate import calibrate

    measured = calibrate(args.target, args.out, calls=args.calls, remote=remote_from_args(args))
    if args.json:
        print(json.dumps(measured, sort_keys=True))
    elif not args.quiet:
        for k, v in measured.items():
            print(f"{k:<22} {v}")
        print(f"wrote {args.out}: use it with --target {args.out}")
    return 0
