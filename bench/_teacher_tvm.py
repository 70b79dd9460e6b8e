"""The teacher itself compiled by kdcc's TVM backend for the host, uncompressed (a second point for the cost model).

    python bench/_teacher_tvm.py TEACHER TARGET_TOML OUT_DIR

Lowers the teacher's team step exactly as the bundle lowers a student (`to_relax`, then
`build_library` for the profile's cpu device) into OUT_DIR/lib/cpu/policy.so, and writes
OUT_DIR/profile.json with the spec, the library and the cost model's estimate of the fused
team step on TARGET_TOML (what `kdcc profile --fused` prints). `kdcc compile --pipeline exact`
would do the same, but its verify step rejects this teacher (ORT vs torch Q_tot differ by
1.5e-5 > 1e-5), so the library is built directly.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path


def main(teacher_path: str, target: str, out: str) -> None:
    import warnings

    from kdcc.api import profile as cost_profile
    from kdcc.inputs.teacher import load_teacher
    from kdcc.ir.team import TeamStep
    from kdcc.targets.profile import load_profile
    from kdcc.targets.tvm.build import build_library
    from kdcc.targets.tvm.lowering import to_relax

    warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*", category=FutureWarning)
    started = time.perf_counter()
    t = load_teacher(teacher_path)
    team = TeamStep(t.spec, t.agent, t.mixer).eval()
    prof = load_profile(target)
    root = Path(out)
    lib = build_library(to_relax(team, t.spec), prof.device("cpu"), prof, root / "lib" / "cpu" / "policy.so",
                        root / ".work")
    _, rows = cost_profile(teacher_path, target, fused=True)
    total = rows.total.per_device["cpu"]
    doc = {"spec": t.spec.to_dict(),
           "libraries": [{"kind": "cpu", "arch": platform.machine(), "path": "lib/cpu/policy.so"}],
           "estimate": {"latency_us": total.latency_us, "flops": rows.total.flops,
                        "param_bytes": rows.total.param_bytes},
           "build_s": lib.seconds, "wall_s": time.perf_counter() - started}
    (root / "profile.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
