"""One network per agent, or one shared: what the heterogeneous student costs and scores.

Run on demand (not in CI):  python bench/heterogeneous.py   (about 5 minutes on 2 cores)
The example speaker–listener teacher is compiled for the host four ways — uncompressed
(`--pipeline exact`), the default student (one network per agent, widths from the cost
model, stacked into batched matmuls by batch-agents), the same without batch-agents, and a
shared-network student (`--opt prune.split=0`) under the same default budget —
and each bundle is measured: its library's median call (fetched `main`, preallocated
inputs, one thread, 10,000 calls after warm-up), the cost model's estimate, FLOPs and
parameter bytes, and `kdcc eval` over 100 episodes (seeds 0–99) normalised by the teacher.
Writes bench/heterogeneous.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["TVM_NUM_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration_check import bundle_call_us, estimate_us, kdcc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
TEACHER = ROOT / "examples" / "speaker_listener_teacher.pt"
VARIANTS = {"teacher (uncompressed)": ["--pipeline", "exact"],
            "student, one network per agent, batched (default)": [],
            "student, one network per agent, separate kernels": ["--skip", "batch-agents"],
            "student, one shared network": ["--opt", "prune.split=0"]}


def _eval(bundle: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "kdcc", "eval", str(bundle), "--episodes", "100", "--teacher",
                           str(TEACHER), "--json", "-q"], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, extra in VARIANTS.items():
        bundle = OUT / f"sl_{len(rows)}"
        kdcc("compile", str(TEACHER), "--target", "host", "-o", str(bundle), "--force", "-q", "--keep", "off",
             *extra)
        spec = json.loads((bundle / "profile.json").read_text())["spec"]
        cost = json.loads((bundle / "profile.json").read_text())
        score = _eval(bundle)
        rows[name] = {"widths": spec["agent"].get("widths", spec["agent"]["hidden_dim"]),
                      "kind": spec["agent"]["kind"], "measured_us": round(bundle_call_us(bundle), 3),
                      "estimate_us": round(estimate_us(bundle), 3), "flops": cost["cost"]["flops"],
                      "param_bytes": cost["cost"]["param_bytes"], "mean_return": round(score["mean"], 3),
                      "normalised": None if score["normalised"] is None else round(score["normalised"], 3)}
        print(f"{name:<42} {rows[name]}")
    doc = {"date": time.strftime("%Y-%m-%d"), "teacher": TEACHER.name, "target": "host",
           "random_return": round(score["random_mean"], 3), "teacher_return": round(score["teacher_mean"], 3),
           "rows": rows}
    (ROOT / "bench" / "heterogeneous.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
