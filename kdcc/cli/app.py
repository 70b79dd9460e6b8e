"""`kdcc` command line: a thin layer over `kdcc.api`.

Every KdccError becomes one line on stderr and exit status 2; heavy imports
(torch, TVM) happen inside the commands so `kdcc --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdcc import __version__
from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP, polish
from kdcc.core.errors import KdccError

__all__ = ["main"]

EXAMPLES = """examples:
  kdcc eval examples/spread_teacher.pt --episodes 100
  kdcc collect examples/spread_teacher.pt -o data.npz --episodes 200
  kdcc profile examples/spread_teacher.pt --target orin
  kdcc compile examples/spread_teacher.pt --target orin -o build/
"""


def _cmd_eval(args) -> int:
    from kdcc.api import evaluate

    r = evaluate(args.policy, episodes=args.episodes, seed=args.seed, teacher_path=args.teacher,
                 config=args.config, teacher_config=args.teacher_config)
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


def _cmd_collect(args) -> int:
    from kdcc.api import collect

    data = collect(args.teacher, args.out, episodes=args.episodes, seed=args.seed, epsilon=args.epsilon,
                   config=args.config)
    if not args.quiet:
        print(f"wrote {args.out}: {len(data)} steps, {data.episodes} episodes")
    return 0


def _cmd_profile(args) -> int:
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


_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def parse_amount(option: str, text: str, shown: str | None = None) -> float:
    """'80000', '80k', '1.5M' -> a positive number; anything else is a one-line error naming the option.

    `shown` is what the user typed when `text` is part of it (the number in '30x')."""
    t = text.strip().lower()
    scale = _SUFFIX.get(t[-1:], 1.0)
    try:
        value = float(t[:-1] if t[-1:] in _SUFFIX else t) * scale
    except ValueError:
        raise KdccError(f"{option}: cannot parse {shown or text!r} (examples: 80000, 80k, 1.5M)") from None
    if not value > 0 or value != value or value == float("inf"):
        raise KdccError(f"{option}: must be a positive number, got {shown or text!r}")
    return value


def _budget(args):
    from kdcc.passes import Budget

    flops = ratio = None
    if args.budget_flops:
        if args.budget_flops.lower().endswith("x"):
            ratio = parse_amount("--budget-flops", args.budget_flops[:-1], shown=args.budget_flops)
        else:
            flops = parse_amount("--budget-flops", args.budget_flops)
    kw = {"flops": flops,
          "bytes": parse_amount("--budget-bytes", args.budget_bytes) if args.budget_bytes else None,
          "latency_us": parse_amount("--budget-latency-us", args.budget_latency_us) if args.budget_latency_us else None,
          "energy_uj": parse_amount("--budget-energy-uj", args.budget_energy_uj) if args.budget_energy_uj else None}
    return Budget(**kw, **({"ratio": ratio} if ratio else {}))


def _options(pairs):
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise KdccError(f"--opt: expected PASS.NAME=VALUE, got {pair!r}")
        try:
            out[key] = float(value) if any(c in value for c in ".e") else int(value)
        except ValueError:
            raise KdccError(f"--opt {key}: not a number: {value!r}") from None
    return out


def _names(text):
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def _cmd_compile(args) -> int:
    from kdcc.flow.compile import compile_teacher
    from kdcc.flow.driver import CompileOptions
    from kdcc.reports.markdown import summary_rows

    opts = CompileOptions(pipeline=args.pipeline, passes=_names(args.passes) or None, skip=_names(args.skip),
                          budget=_budget(args), seed=args.seed, dataset=args.dataset, dump_ir=args.dump_ir,
                          ablate=args.ablate, pareto=args.pareto, options=_options(args.opt), config=args.config)
    out = compile_teacher(args.teacher, args.target, args.out, opts, force=args.force, record=args.record,
                          build=not args.no_build)
    recs = out.result.records
    if args.json:
        print(json.dumps({"out": str(args.out), "passes": [
            {"name": r.name, "wall_s": r.wall_s, "metrics": r.metrics, "fidelity": r.fidelity} for r in recs],
            "bundle": getattr(out.bundle, "summary", lambda: None)(), "pareto": out.pareto},
            sort_keys=True, default=str))
        return 0
    if not args.quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"kdcc compile → {args.target} ({out.result.wall_s:.1f} s)")
        for h in ["#", "pass", "FLOPs", "params", "bytes", "est. µs", "est. µJ", "max|ΔQ|", "agree", "|ΔQtot|"]:
            table.add_column(h, justify="left" if h == "pass" else "right")
        for row in summary_rows(recs):
            table.add_row(*row)
        Console(width=None if sys.stdout.isatty() else 150).print(table)
        if out.pareto is not None and not args.out:
            from kdcc.reports.pareto import pareto_markdown

            print(pareto_markdown(out.pareto))
        if args.out:
            print(f"wrote {args.out} (reports: {Path(args.out) / 'report.md'}, {Path(args.out) / 'report.html'})")
    return 0


def _cmd_calibrate(args) -> int:
    from kdcc.targets.tvm.calibrate import calibrate

    measured = calibrate(args.target, args.out, calls=args.calls)
    if args.json:
        print(json.dumps(measured, sort_keys=True))
    elif not args.quiet:
        for k, v in measured.items():
            print(f"{k:<22} {v}")
        print(f"wrote {args.out}: use it with --target {args.out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are bad input like any other: one line naming the problem, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = _Parser(prog="kdcc", description="Compile multi-agent RL teachers into small, fast "
                                "students for edge targets (Jetson Orin).", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"kdcc {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail, and tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    e = sub.add_parser("eval", parents=[common], formatter_class=fmt,
                       help="mean team return of a teacher or compiled bundle in MPE, vs a random policy",
                       description="Run greedy team episodes (env seeds SEED..SEED+N-1) and report the mean "
                       "team return (summed over steps and agents), a uniform random policy's on the same "
                       "seeds, and the normalised score when a teacher is known.")
    e.add_argument("policy", help="bundle directory, or a teacher: " + TEACHER_HELP)
    e.add_argument("--config", help=CONFIG_HELP)
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--teacher", help="teacher to normalise the score against (any teacher input)")
    e.add_argument("--teacher-config", help="--config for the --teacher input")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_cmd_eval)

    c = sub.add_parser("collect", parents=[common], formatter_class=fmt,
                       help="roll the teacher out in MPE and write a dataset (.npz)",
                       description="Record teacher rollouts (obs, state, actions, rewards, the teacher's "
                       "Q-values, hidden states and Q_tot) in the format of docs/dataset-format.md.")
    c.add_argument("teacher", help=TEACHER_HELP)
    c.add_argument("--config", help=CONFIG_HELP)
    c.add_argument("-o", "--out", required=True, help="output .npz")
    c.add_argument("--episodes", type=int, default=200)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epsilon", type=float, default=0.1, help="probability of a random action, for coverage")
    c.set_defaults(func=_cmd_collect)

    pr = sub.add_parser("profile", parents=[common], formatter_class=fmt,
                        help="per-layer FLOPs, bytes, estimated latency and energy of a team step on a target",
                        description="Cost-model table of one team step (all agents + mixer) on every device "
                        "of the target, and which device the model recommends.")
    pr.add_argument("teacher", help=TEACHER_HELP)
    pr.add_argument("--config", help=CONFIG_HELP)
    pr.add_argument("--target", default="orin", help="profile name (orin, orin-cpu, orin-gpu, orin-nano, "
                    "host) or a path to a .toml profile")
    pr.add_argument("--fused", action="store_true", help="profile the fused team graph (agents batched)")
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.set_defaults(func=_cmd_profile)

    co = sub.add_parser("compile", parents=[common], formatter_class=fmt,
                        help="distill, prune and compile a teacher into a deployable student bundle",
                        description="Run a pipeline of graph passes on the teacher (default: approximate the "
                        "mixer, prune to the target's cost budget, distill, fuse the team graph, fold constants), "
                        "then build TVM libraries for the target and write the bundle (lib/, include/, CMake "
                        "package, student.onnx, profile.json, report.md + report.html, record/) atomically.")
    co.add_argument("teacher", help=TEACHER_HELP)
    co.add_argument("--config", help=CONFIG_HELP)
    co.add_argument("--target", default="orin", help="profile name or path to a .toml profile")
    co.add_argument("-o", "--out", help="bundle directory to write (omit to only run the passes)")
    co.add_argument("--force", action="store_true", help="replace an existing non-empty output directory")
    co.add_argument("--pipeline", default="default", help="named pipeline (default, exact)")
    co.add_argument("--passes", help="run exactly these passes, comma-separated, in this order")
    co.add_argument("--skip", help="comma-separated passes to leave out of the pipeline")
    co.add_argument("--dump-ir", metavar="DIR", help="write the program text after each pass to DIR/NN_<pass>.txt, as the "
                    "passes run (kept when a later pass fails: a debugging aid)")
    co.add_argument("--record", metavar="DIR", help="write a per-pass snapshot for `kdcc check`")
    co.add_argument("--dataset", help="a `kdcc collect` dataset (default: collect 200 episodes on the fly)")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--budget-flops", help="FLOPs per team step: a number (80k, 1.5M) or a ratio to the "
                    "teacher (30x); default 30x when no budget is given")
    co.add_argument("--budget-bytes", help="bytes moved per team step")
    co.add_argument("--budget-latency-us", help="estimated latency per team step on the target, µs")
    co.add_argument("--budget-energy-uj", help="estimated energy per team step on the target, µJ")
    co.add_argument("--opt", action="append", metavar="PASS.NAME=VALUE",
                    help="pass option, e.g. distill.steps=2000 or distill.w_relation=0 (repeatable)")
    co.add_argument("--ablate", action="store_true",
                    help="re-run distillation without each loss term and add the comparison to report.md")
    co.add_argument("--pareto", action="store_true",
                    help="re-run prune+distill at 1/4, 1/2 and 2x the budget, score each in MPE, and add the "
                    "budget-vs-score front to report.md/report.html (and pareto.json)")
    co.add_argument("--no-build", action="store_true", help="run the passes and write report/record only")
    co.add_argument("--json", action="store_true", help="print one JSON object")
    co.set_defaults(func=_cmd_compile)

    ca = sub.add_parser("calibrate", parents=[common], formatter_class=fmt,
                        help="measure this machine with compiled probe graphs and write a calibrated profile",
                        description="Compile small probe graphs for the host with TVM, time them the way a "
                        "bundle calls its library (one thread), and write the profile with the measured "
                        "call/kernel overheads, GEMM throughput and memory bandwidth.")
    ca.add_argument("--target", default="host", help="profile to start from (a host CPU profile)")
    ca.add_argument("-o", "--out", default="host-calibrated.toml", help="profile file to write")
    ca.add_argument("--calls", type=int, default=2000, help="timed calls per probe")
    ca.add_argument("--json", action="store_true", help="print one JSON object")
    ca.set_defaults(func=_cmd_calibrate)

    from kdcc.cli.check import add_parser as add_check_parser

    add_check_parser(sub, common)
    from kdcc.cli.convert import add_parser as add_convert_parser
    from kdcc.cli.inspect import add_parser as add_inspect_parser

    add_convert_parser(sub, common)
    add_inspect_parser(sub, common)
    polish(sub)  # defaults and examples in every subcommand's --help
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    # torch.export's own deprecation noise, raised while lowering to TVM: not the user's concern
    warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*", category=FutureWarning)
    try:
        from kdcc.core.interrupt import install_interrupt_handler
        from kdcc.core.progress import set_quiet

        set_quiet(args.quiet)
        install_interrupt_handler()
        return int(args.func(args) or 0)
    except KdccError as e:
        if args.verbose:
            raise
        print(f"kdcc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the system refused (permissions, full disk, a path through a file)
        if args.verbose:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"kdcc {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kdcc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
