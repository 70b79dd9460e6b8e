"""`kdcc measure`: time a bundle's libraries on the device (here or through TVM RPC) into profile.json."""

from __future__ import annotations

import argparse
import json

from kdcc.cli.args import add_rpc_args, remote_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("measure", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="time a bundle's libraries on the device and record them beside the estimates",
                        description="Upload each library of the bundle (team step, each role's agent step, the "
                        "monitor) to the device through TVM RPC, or run it here when the bundle is built for this "
                        "machine; time a warm-up then --repeat calls one by one on the device, and write median "
                        "and p99 per library into profile.json (\"measured\", beside the cost model's estimate). "
                        "On a Jetson, energy per step from the INA3221 rails is added.")
    p.add_argument("bundle", help="a bundle directory written by kdcc compile")
    add_rpc_args(p)
    p.add_argument("--repeat", type=int, default=1000, help="timed calls per library")
    p.add_argument("--power", action=argparse.BooleanOptionalAction, default=None,
                   help="energy per step from the Jetson's INA3221 rails (default: when their sysfs tree exists)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.targets.bundle.measure import measure_bundle

    rows = measure_bundle(args.bundle, remote_from_args(args), repeat=args.repeat, power=args.power)
    if args.json:
        print(json.dumps({"bundle": args.bundle, "libraries": rows}, sort_keys=True))
    elif not args.quiet:
        for r in rows:
            if "skipped" in r:
                print(f"{r['name']:<10} {r['device']:<6} skipped: {r['skipped']}")
                continue
            est = f"  (estimate {r['estimate_us']:.2f} µs)" if r.get("estimate_us") is not None else ""
            energy = f"  {r['power']['energy_uj_per_step']:.2f} µJ/step" if "power" in r else ""
            print(f"{r['name']:<10} {r['device']:<6} median {r['median_us']:.2f} µs  p99 {r['p99_us']:.2f} µs{est}{energy}")
        print(f"wrote {args.bundle}/profile.json")
    return 0
