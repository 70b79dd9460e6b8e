"""`kdcc convert INPUT -o OUT`: any teacher input as a kdcc teacher file, or as an ONNX teacher.

    kdcc convert MODEL_DIR --config config.json -o teacher.pt   EPyMARL/PyMARL -> teacher file v1
    kdcc convert teacher.pt -o onnx_teacher/ --to onnx          -> agent.onnx + mixer.onnx + spec.json

The teacher file keeps where the weights came from (checkpoint, config, run
name, seed, the import notes) in its provenance. An ONNX teacher cannot be
converted back: its weights are graphs, not state dicts.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_parser", "convert_teacher"]

_EXAMPLES = """examples:
  kdcc convert results/models/qmix_seed0/2050000 --config results/sacred/qmix/1/config.json -o teacher.pt
  kdcc convert teacher.pt --to onnx -o onnx_teacher/
"""


def convert_teacher(src: str | Path, out: str | Path, *, config: str | Path | None = None, to: str | None = None,
                    force: bool = False) -> Path:
    """Write the teacher held by `src` to `out` as `to` ('pt' or 'onnx'; default from out's suffix)."""
    from kdcc.core.errors import KdccError
    from kdcc.core.fileio import check_writable
    from kdcc.inputs.sources import has_torch_weights, load_teacher_source

    out = Path(out)
    fmt = to or ("pt" if out.suffix == ".pt" else None)
    if fmt not in ("pt", "onnx"):
        raise KdccError(f"-o {out}: say --to pt or --to onnx (or name a .pt file)")
    if fmt == "onnx":
        if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
            raise KdccError(f"{out}: exists and is not an empty directory (use --force to write into it)")
        check_writable(out, is_file=False)
    else:
        check_writable(out)
    teacher = load_teacher_source(src, config)
    if not has_torch_weights(teacher):
        raise KdccError(f"{src}: an ONNX teacher cannot be converted (its weights are graphs, not state dicts)")
    if fmt == "onnx":
        from kdcc.inputs.onnx_teacher import export_onnx_teacher

        return export_onnx_teacher(teacher, out)
    from kdcc.inputs.teacher import save_teacher

    provenance = {**teacher.provenance, "converted_from": Path(src).name}
    save_teacher(out, teacher.spec, teacher.agent, teacher.mixer, provenance)
    return out


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
    p.add_argument("--force", action="store_true", help="write into a non-empty ONNX output directory")
    p.set_defaults(func=_cmd_convert)


def _cmd_convert(args) -> int:
    out = convert_teacher(args.teacher, args.out, config=args.config, to=args.to, force=args.force)
    if not args.quiet:
        print(f"wrote {out}")
    return 0
