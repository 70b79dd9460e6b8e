"""`kdcc compile ARGS...` exactly as the CLI runs it, keeping what the benchmark needs afterwards.

    python bench/_kdcc_compile.py SAVE_DIR -- compile TEACHER --target T -o OUT [...]

Runs `kdcc.cli.app.main(ARGS)` unchanged (same options, same outputs, same exit status) and, after
it, writes SAVE_DIR/student.pt (the compiled team step as a pickled torch module, to run the
student in torch eager and score it) and SAVE_DIR/meta.json (spec, cost metrics of the teacher
and of the student on the target, pass wall times, TVM build seconds). run.py times this process
as the `kdcc compile` wall time: the save at the end takes milliseconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    save, sep, args = argv[0], argv[1], argv[2:]
    assert sep == "--", "usage: _kdcc_compile.py SAVE_DIR -- compile ..."
    import kdcc.flow.compile
    from kdcc.cli import app as cli

    captured = {}
    original = kdcc.flow.compile.compile_teacher

    def compile_teacher(*a, **kw):
        captured["out"] = original(*a, **kw)
        return captured["out"]

    kdcc.flow.compile.compile_teacher = compile_teacher
    rc = cli.main(args)
    if rc != 0 or "out" not in captured:
        return rc or 1
    cli_s = time.perf_counter() - started
    import torch

    out = captured["out"]
    result = out.result
    save_dir = Path(save)
    save_dir.mkdir(parents=True, exist_ok=True)
    torch.save(result.program.team_module(), save_dir / "student.pt")
    meta = {
        "argv": args,
        "spec": result.program.spec.to_dict(),
        "teacher_metrics": result.records[0].metrics,
        "student_metrics": result.records[-1].metrics,
        "student_fidelity": result.records[-1].fidelity,
        "passes": [{"name": r.name, "wall_s": r.wall_s} for r in result.records],
        "passes_wall_s": result.wall_s,
        "cli_in_process_s": cli_s,
        "build_seconds": getattr(out.bundle, "build_seconds", None),
    }
    (save_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
