"""`--precision` on the example teacher: fidelity, size and latency of the fp32, fp16 and int8 students.

    python bench/precision.py --target host|orin [--episodes 100] [--work build/bench/precision]

Runs the passes once (the student is the same at every precision), then `kdcc compile`'s precision
study (`kdcc.flow.precision`: a host team-step build per precision, action agreement with the fp32
student on the probe, normalised score on the held-out seeds 1000..) and, per precision, writes the
bundle exactly as `kdcc compile --precision P` does and scores it as `kdcc eval BUNDLE --episodes N
--teacher examples/spread_teacher.pt` does (seeds 0..N-1; an orin bundle runs its student.onnx, fp16 or
QDQ int8, in ONNX Runtime). A host bundle's team step and agent step are timed from Python
(HostPolicy.step, HostAgent.act; one thread; medians of 20 rounds of 5,000 calls, the precisions
interleaved). Writes bench/precision-<target>.json (with the load average); never run in CI.
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


def _host_latency(work: Path, spec, precisions, rounds: int = 20, calls: int = 5_000) -> dict[str, dict[str, float]]:
    """Median µs of the team step (HostPolicy.step) and the agent step (HostAgent.act) of each precision's host
    bundle, one thread, the precisions interleaved round by round so that the machine's load hits them alike."""
    from kdcc.ir.agent_step import agent_example_inputs
    from kdcc.ir.roles import team_roles
    from kdcc.targets.tvm.runtime import HostAgent, HostPolicy

    role = team_roles(spec)[0]
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((spec.n_agents, spec.obs_dim)).astype(np.float32)
    last, state = np.zeros(spec.n_agents, np.int64), rng.standard_normal(spec.state_dim).astype(np.float32)
    own = rng.standard_normal((1, role.obs_dim)).astype(np.float32)
    steps = {p: (HostPolicy(work / p / "lib/cpu/policy.so", spec),
                 HostAgent(work / p / f"lib/cpu/{role.name}.so", agent_example_inputs(spec, role), role.n_actions,
                           role.agents[0] if role.shared else None)) for p in precisions}
    times = {p: ([], []) for p in precisions}
    for _ in range(rounds):
        for p, (team, agent) in steps.items():
            start = time.perf_counter()
            for _ in range(calls):
                team.step(obs, last, state)
            middle = time.perf_counter()
            for _ in range(calls):
                agent.act(own)
            times[p][0].append((middle - start) / calls * 1e6)
            times[p][1].append((time.perf_counter() - middle) / calls * 1e6)
    return {p: {"host_team_step_us": float(np.median(t)), "host_agent_step_us": float(np.median(a))}
            for p, (t, a) in times.items()}


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
    result = run_passes(str(TEACHER), args.target, CompileOptions(precision="auto", keep=None))
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
        bundles[p] = entry
        print(p, json.dumps(entry), flush=True)
    if args.target == "host":
        for p, latency in _host_latency(work, result.program.spec, PRECISIONS).items():
            bundles[p].update(latency)
            print(p, json.dumps(latency), flush=True)
    doc = {"target": args.target, "episodes": args.episodes, "study": decision, "bundles": bundles,
           "seconds": round(time.perf_counter() - started, 1), "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = ROOT / "bench" / f"precision-{args.target}.json"
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
