"""Does the calibrated host cost model predict compiled latency? (issue: estimate within 1.5x).

Run on demand (not in CI):  python bench/calibration_check.py
1. `kdcc calibrate --target host` writes bench/results/host-calibrated.toml;
2. the example teacher is compiled uncompressed (`--pipeline exact`) and as the default student
   for that profile;
3. each bundle's library is called the way the bundle calls it (fetched `main`, preallocated
   inputs, one thread) 10,000 times after warm-up;
4. the median is compared with the cost model's estimate in the bundle's record.
Writes bench/calibration_check.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["TVM_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
TEACHER = ROOT / "examples" / "spread_teacher.pt"


def kdcc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kdcc.cli.app", *args], check=True, cwd=ROOT)


def bundle_call_us(bundle: Path, calls: int = 10_000) -> float:
    from kdcc.targets.bundle.writer import open_bundle
    from kdcc.targets.tvm.calibrate import median_call_us

    policy = open_bundle(bundle)
    return median_call_us(policy._main, policy._tensors, calls)


def estimate_us(bundle: Path) -> float:
    """The cost model's estimate of the Relax VM step timed here (profile.json keeps it beside the VM-free one)."""
    cost = json.loads((bundle / "profile.json").read_text())["cost"]
    return cost.get(f"vm_latency_us.{cost['device']}", cost["latency_us"])


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    profile = OUT / "host-calibrated.toml"
    kdcc("calibrate", "--target", "host", "-o", str(profile), "-q")
    rows = {}
    for name, extra in (("teacher (uncompressed)", ["--pipeline", "exact"]), ("student (default budget)", ["--keep", "off"])):
        bundle = OUT / ("cal_" + name.split()[0])
        kdcc("compile", str(TEACHER), "--target", str(profile), "-o", str(bundle), "--force", "-q", *extra)
        measured, est = bundle_call_us(bundle), estimate_us(bundle)
        rows[name] = {"measured_us": round(measured, 3), "estimate_us": round(est, 3),
                      "estimate_over_measured": round(est / measured, 3)}
        print(f"{name:<26} measured {measured:7.2f} µs  estimate {est:7.2f} µs  ratio {est / measured:.2f}")
    doc = {"date": time.strftime("%Y-%m-%d"), "profile": profile.read_text().splitlines()[:2], "rows": rows,
           "goal": "estimate within 1.5x of measured",
           "holds": all(1 / 1.5 <= r["estimate_over_measured"] <= 1.5 for r in rows.values())}
    (ROOT / "bench" / "calibration_check.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
