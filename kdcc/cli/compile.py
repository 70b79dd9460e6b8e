"""`kdcc compile`: the compile flow (kdcc.flow), then a summary table or one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdcc.cli.args import add_rpc_args, budget_from_args, pass_names, pass_options, remote_from_args
from kdcc.cli.help import CONFIG_HELP, TEACHER_HELP

__all__ = ["add_parser", "run"]


def add_parser(sub, common) -> None:
    p = sub.add_parser("compile", parents=[common], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="distill, prune and compile a teacher into a deployable student bundle",
                        description="Run a pipeline of graph passes on the teacher (default: approximate the "
                        "mixer, prune to the target's cost budget, distill, fuse the team graph, fold constants), "
                        "then build TVM libraries for the target and write the bundle (lib/, include/, CMake "
                        "package, student.onnx, profile.json, report.md + report.html, record/, manifest.json) "
                        "atomically.")
    p.add_argument("teacher", help=TEACHER_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--target", default="orin", help="profile name or path to a .toml profile")
    p.add_argument("-o", "--out", help="bundle directory to write (omit to only run the passes)")
    p.add_argument("--force", action="store_true", help="replace a bundle or record kdcc wrote, never other files")
    p.add_argument("--pipeline", default="default", help="named pipeline (default, exact)")
    p.add_argument("--passes", help="run exactly these passes, comma-separated, in this order")
    p.add_argument("--skip", help="comma-separated passes to leave out of the pipeline")
    p.add_argument("--dump-ir", metavar="DIR", help="write the program text after each pass to DIR/NN_<pass>.txt, as the "
                    "passes run (kept when a later pass fails: a debugging aid)")
    p.add_argument("--record", metavar="DIR", help="write a per-pass snapshot for `kdcc check`")
    p.add_argument("--dataset", help="a `kdcc collect` dataset (default: collect 200 episodes on the fly)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-flops", help="FLOPs per step (of one robot, see --budget-scope): a number (80k, "
                    "1.5M) or a ratio to the teacher's (30x); none given: no limit with --keep, 30x with --keep off")
    p.add_argument("--budget-bytes", help="bytes moved per step")
    p.add_argument("--budget-latency-us", help="estimated latency per step on the target, µs")
    p.add_argument("--budget-energy-uj", help="estimated energy per step on the target, µJ")
    p.add_argument("--budget-scope", choices=("robot", "team"), default="robot",
                   help="what a budget limits: robot = one agent step, what each robot runs on its own (every "
                   "role must fit; the mixer is not needed to act); team = the whole team step (all agents and "
                   "the mixer approximation), what a simulator or central station runs")
    p.add_argument("--opt", action="append", metavar="PASS.NAME=VALUE",
                    help="pass option, e.g. distill.steps=2000 or distill.w_relation=0 (repeatable); `kdcc "
                    "passes` lists every pass's options with type, default and doc")
    p.add_argument("--ablate", action="store_true",
                    help="re-run distillation without each loss term and add the comparison to report.md")
    p.add_argument("--pareto", action="store_true",
                    help="re-run prune+distill at 1/4, 1/2 and 2x the budget, score each in MPE, and add the "
                    "budget-vs-score front to report.md/report.html (and pareto.json)")
    p.add_argument("--keep", type=_keep_fraction, default=0.97, metavar="FRACTION|off",
                   help="the objective: the cheapest student (by the budget's metric, else the estimated latency of "
                   "one robot's step) whose normalised score on held-out MPE seeds keeps FRACTION of the teacher's "
                   "(score - Z x SE >= FRACTION, --keep-z); searched over GRU and feed-forward widths, each a distilled student "
                   "(trials in parallel processes, or on Ray with --ray). --budget-* stay hard limits. off: no "
                   "search, the widest student within the budget (default budget 30x)")
    p.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run the --keep trials as Ray tasks: auto starts a local Ray instance, ADDRESS joins a "
                   "cluster (every node with kdcc installed); needs the extra kdcc[ray]")
    p.add_argument("--keep-episodes", type=int, default=100,
                   help="selection episodes per --keep candidate (env seeds from 1000, never used in training)")
    p.add_argument("--confirm-episodes", type=int, default=1000,
                   help="fresh episodes (env seeds from 200000) the chosen student is confirmed on: its reported "
                        "score; a student that misses the bar there gives way to the next candidate")
    p.add_argument("--keep-z", type=float, default=0.0, metavar="Z",
                   help="a candidate keeps the score when score - Z x its paired standard error >= FRACTION: 0 takes "
                   "the estimate (its SE reported), 1 asks that one SE below it still clear the bar (wider students)")
    p.add_argument("--certify-episodes", type=int, default=1, metavar="N",
                   help="with -o: certify the teacher's and the student's every agent step on N probe episodes "
                   "(CROWN, ε in the teacher's observation std; as kdcc certify) into report.md/html and each "
                   "role's certified_eps in profile.json; 0 = skip")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8", "auto"),
                   help="arithmetic inside the compiled steps (the C API stays float32/int64): fp16 (float16 weights "
                   "and activations, float32 accumulation), int8 (int8 weights per output channel, activations "
                   "calibrated on the dataset, int8 x int8 -> int32 matmuls; agents/*.onnx and student.onnx in QDQ "
                   "form), or auto: the cheapest on the target whose fidelity stays within tolerance of fp32 "
                   "(measured in MPE; see the report's Precision section). Non-fp32 precisions are checked against "
                   "the fp32 student: action agreement and normalised score")
    p.add_argument("--precision-episodes", type=int, default=30,
                   help="held-out MPE episodes each precision is scored on (with --precision other than fp32)")
    p.add_argument("--no-build", action="store_true", help="run the passes and write report/record only")
    p.add_argument("--no-direct", action="store_true",
                   help="skip the VM-free libraries (lib/<device>/<name>.direct.so; profile.json says so): the bundle "
                   "runs its Relax VM libraries alone, through the TVM runtime it ships")
    p.add_argument("--sign-key", metavar="KEY.pem", help="sign the bundle with this EC private key (PEM; P-256, "
                   "P-384 or P-521) as kdcc.sig, before it is published; checked before any work (see kdcc sign)")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="tune the team step's GEMM kernels with N MetaSchedule trials on the target's CPU device (here, "
                   "or on the board through --rpc-tracker/--rpc-key or --rpc), cached by target and kernels under "
                   "$KDCC_CACHE_DIR/tune (a rebuild reuses it); the report and profile.json give tuned vs untuned "
                   "latency measured on that device")
    add_rpc_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _keep_fraction(text: str) -> float | None:
    if text.lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a fraction of the teacher's score (e.g. 0.97) or off, not {text!r}")


def run(args) -> int:
    from kdcc.flow.compile import compile_teacher
    from kdcc.flow.driver import CompileOptions

    opts = CompileOptions(pipeline=args.pipeline, passes=pass_names(args.passes) or None, skip=pass_names(args.skip),
                          budget=budget_from_args(args), seed=args.seed, dataset=args.dataset, dump_ir=args.dump_ir,
                          ablate=args.ablate, pareto=args.pareto, keep=args.keep, ray=args.ray,
                          keep_episodes=args.keep_episodes, confirm_episodes=args.confirm_episodes, keep_z=args.keep_z, certify_episodes=args.certify_episodes,
                          options=pass_options(args.opt), config=args.config,
                          tune=args.tune, remote=remote_from_args(args),
                          precision=args.precision, precision_episodes=args.precision_episodes,
                          direct=not args.no_direct)
    out = compile_teacher(args.teacher, args.target, args.out, opts, force=args.force, record=args.record,
                          build=not args.no_build, sign_key=args.sign_key)
    if args.json:
        from kdcc.reports.compile_json import compile_json

        print(json.dumps(compile_json(args.out, out.result.records, out.bundle, out.pareto, out.keep,
                                      out.result.certified), sort_keys=True))
    elif not args.quiet:
        _print_summary(args, out)
    return 0


def _print_summary(args, out) -> None:
    from rich.console import Console

    from kdcc.reports.pass_table import pass_table
    from kdcc.reports.terminal import print_section, rich_table

    console = Console(width=None if sys.stdout.isatty() else 150)
    title = f"kdcc compile → {args.target} ({out.result.wall_s:.1f} s)"
    console.print(rich_table(pass_table(out.result.records), title))
    if out.pareto is not None and not args.out:
        from kdcc.reports.pareto import pareto_section

        print_section(console, pareto_section(out.pareto))
    if out.keep is not None and not args.out:
        from kdcc.reports.keep import keep_section

        print_section(console, keep_section(out.keep))
    if out.precision is not None:
        from kdcc.reports.precision import precision_section

        print_section(console, precision_section(out.precision))
    if args.out:
        print(f"wrote {args.out} (reports: {Path(args.out) / 'report.md'}, {Path(args.out) / 'report.html'})")
