"""`kdcc convert INPUT -o OUT`: any teacher input as a kdcc teacher file, or as an ONNX teacher.

    kdcc convert MODEL_DIR --config config.json -o teacher.pt   EPyMARL/PyMARL -> teacher file v1
    kdcc convert teacher.pt -o onnx_teacher/ --to onnx          -> agent.onnx + mixer.onnx + spec.json

The conversion itself is `kdcc.inputs.convert.convert_teacher`.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

_EXAMPLES = """examples:
  kdcc convert results/models/qmix_seed0/2050000 --config results/sacred/qmix/1/config.json -o teacher.pt
  kdcc convert teacher.pt --to onnx -o onnx_teacher/
"""


def add_parser(sub, common) -> None:
    p = sub.add_parser("convert", parents=[common], epilog=_EXAMPLES,
                       help="write an EPyMARL/PyMARL model directory as a teacher file (or a teacher as ONNX)",
                       description="Read any teacher input kdcc accepts and write it as a kdcc teacher file "
                       "(.pt, docs/teacher-format.md) or as an ONNX teacher directory (agent.onnx, mixer.onnx, "
                       "spec.json). What a model directory's config could not say is printed as notes.")
    p.add_argument("teacher", help="model directory (agent.th, mixer.th) or teacher file")
    p.add_argument("--config", help="the run's sacred config.json (default: config.json beside the checkpoint)")
    p.add_argument("-o", "--out", required=True, help="teacher file (.pt) or, with --to onnx, a directory")
    p.add_argument("--to", choices=["pt", "onnx"], help="output kind (default: pt when OUT ends in .pt)")
    p.add_argument("--force", action="store_true", help="write over an ONNX teacher directory kdcc exported before")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.inputs.convert import convert_teacher

    out = convert_teacher(args.teacher, args.out, config=args.config, to=args.to, force=args.force)
    if not args.quiet:
        print(f"wrote {out}")
    return 0
