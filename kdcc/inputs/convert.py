"""Any teacher input written as a kdcc teacher file, or as an ONNX teacher.

The teacher file keeps where the weights came from (checkpoint, config, run
name, seed, the import notes) in its provenance. An ONNX teacher cannot be
converted back: its weights are graphs, not state dicts.
"""

from __future__ import annotations

from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.core.fileio import check_writable
from kdcc.core.outputs import check_output_dir
from kdcc.inputs.sources import has_torch_weights, load_teacher_source

__all__ = ["convert_teacher"]


def convert_teacher(src: str | Path, out: str | Path, *, config: str | Path | None = None, to: str | None = None,
                    force: bool = False) -> Path:
    """Write the teacher held by `src` to `out` as `to` ('pt' or 'onnx'; default from out's suffix)."""
    out = Path(out)
    fmt = to or ("pt" if out.suffix == ".pt" else None)
    if fmt not in ("pt", "onnx"):
        raise KdccError(f"-o {out}: say --to pt or --to onnx (or name a .pt file)")
    if fmt == "onnx":  # --force writes over an ONNX teacher kdcc exported, never over the user's files
        check_output_dir(out, force=force, kinds=("onnx-teacher",), others={"the teacher": src, "--config": config})
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
