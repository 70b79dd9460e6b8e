"""`--precision` on the example teacher: fidelity, size and latency of the fp32, fp16 and int8 students.

    python bench/precision.py --target host|orin [--episodes 100] [--work build/bench/precision]

Runs the passes once (the student is the same at every precision), then `kdcc compile`'s precision
study (`kdcc.flow.precision`: a host team-step build per precision, action agreement with the fp32
student on the probe, normalised score on the held-out seeds 1000..) and, per precision, writes the
bundle exactly as `kdcc compile --precision P` does and scores it as `kdcc eval BUNDLE --episodes N
--teacher examples/spread_teacher.pt` does (seeds 0..N-1; an orin bundle runs its student.onnx, fp16 or
QDQ int8, in ONNX Runtime). A host bundle's team step is timed from Python (HostPolicy.step, one
thread, median of 5 × 20,000 calls). Writes bench/precision-<target>.json; never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TVM_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "examples" / "spread_teacher.pt"


def _host_step_us(library: Path, spec) -> float:
    from kdcc.targets.tvm.runtime import HostPolicy

    policy = HostPolicy(library, spec)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((spec.n_agents, spec.obs_dim)).astype(np.float32)
    last, state = np.zeros(spec.n_agents, np.int64), rng.standard_normal(spec.state_dim).astype(np.float32)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20_000):
            policy.step(obs, last, state)
        runs.append((time.perf_counter() - start) / 20_000 * 1e6)
    return float(np.median(runs))


def main() -> None:
    from kdcc.api import evaluate
    from kdcc.flow.compile import _write_bundle
    from kdcc.flow.driver import CompileOptions, run_passes
    from kdcc.flow.precision import PRECISIONS, decide_precision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="host")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--work", default=str(ROOT / "build" / "bench" / "precision"))
    args = ap.parse_args()
    work = Path(args.work) / args.target
    started = time.perf_counter()
    result = run_passes(str(TEACHER), args.target, CompileOptions(precision="auto"))
    decision, samples = decide_precision(result, "auto", args.episodes)
    bundles = {}
    for p in PRECISIONS:
        reduced = p != "fp32"
        _write_bundle(result, work / p, {}, True, None, dict(decision, requested=p, chosen=p) if reduced else None,
                      samples if reduced else {})
        r = evaluate(work / p, episodes=args.episodes, teacher_path=str(TEACHER))
        gap = r.teacher_mean - r.random_mean
        entry = {"normalised": r.normalised, "se": r.std / np.sqrt(args.episodes) / gap, "mean": r.mean,
                 "libraries": {f.relative_to(work / p).as_posix(): f.stat().st_size
                               for f in sorted((work / p / "lib").rglob("*.so"))},
                 "student_onnx_bytes": (work / p / "student.onnx").stat().st_size}
        if args.target == "host":
            entry["host_team_step_us"] = _host_step_us(work / p / "lib" / "cpu" / "policy.so", result.program.spec)
        bundles[p] = entry
        print(p, json.dumps(entry), flush=True)
    doc = {"target": args.target, "episodes": args.episodes, "study": decision, "bundles": bundles,
           "seconds": round(time.perf_counter() - started, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = ROOT / "bench" / f"precision-{args.target}.json"
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
