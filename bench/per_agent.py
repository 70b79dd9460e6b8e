"""`make bench`, per robot: one agent step, as a robot runs it, against the team step.

    python bench/per_agent.py [--calls 100000] [--work build/bench/per_agent]

Compiles the example teachers for this machine with the default budget (30x, per robot) and,
for every role of each bundle, times one agent step (one thread, medians of --calls calls after
warm-up, inputs written into preallocated buffers, hidden state and last action carried):
- from Python: the role's compiled library through `HostStep` (the Relax VM's `main`);
- ONNX Runtime running the same per-agent graph (agents/<role>.onnx, intra-op 1, IO binding);
- from C: `examples/firmware/robot_runner --bench N` (the bundle's kdcc_agent C API), when the
  firmware example builds here;
and, for scale, the team step (HostPolicy.step, and student.onnx in ONNX Runtime).
A soak (`--soak`, 10^7 C calls of the spread robot) checks that resident memory stays flat.
Writes bench/per_agent.json and prints a table; never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = {"spread": ROOT / "examples" / "spread_teacher.pt",
            "speaker_listener": ROOT / "examples" / "speaker_listener_teacher.pt"}
EPISODE = 25


def _median_us(call, calls: int) -> dict:
    for _ in range(max(calls // 10, 100)):
        call()
    clock, out = time.perf_counter_ns, np.empty(calls, np.int64)
    for k in range(calls):
        t0 = clock()
        call()
        out[k] = clock() - t0
    return {"median_us": round(float(np.median(out)) / 1e3, 3), "p99_us": round(float(np.percentile(out, 99)) / 1e3, 3),
            "calls": calls}


def _agent_loop(step, role: dict, agent: int):
    """A robot's control loop around `step(obs, last, hidden[, id]) -> (action, q, hidden)`."""
    g = np.random.default_rng(agent)
    obs = g.standard_normal((256, 1, role["obs_dim"])).astype(np.float32)
    state = {"i": 0, "last": np.array([-1], np.int64), "hidden": np.zeros((1, role["hidden_dim"]), np.float32)}
    agent_id = np.array([agent], np.int64)

    def call():
        i = state["i"]
        if i % EPISODE == 0:
            state["last"][0], state["hidden"][...] = -1, 0.0
        args = (obs[i % 256], state["last"], state["hidden"]) + ((agent_id,) if role["network"] == "shared" else ())
        action, _, hidden = step(*args)
        state["last"], state["hidden"], state["i"] = np.asarray(action, np.int64).reshape(1), hidden, i + 1
    return call


def _ort(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outs = [o.name for o in session.get_outputs()]
    return lambda *args: session.run(outs, dict(zip(names, args)))


def _c_runner(bundle: Path, work: Path, role: str) -> Path | None:
    """examples/firmware's robot_runner linked with this role's target (Release)."""
    build = work / f"fw-{role}"
    try:
        subprocess.run(["cmake", "-S", str(ROOT / "examples" / "firmware"), "-B", str(build),
                        f"-Dkdcc_policy_DIR={bundle}", f"-DKDCC_ROBOT_ROLE={role}", "-DCMAKE_BUILD_TYPE=Release"],
                       check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"  C runner not built ({e}); skipping the C figures", file=sys.stderr)
        return None
    runner = build / "robot_runner"
    return runner if runner.exists() else None


def _c_bench(runner: Path, lib_dir: Path, agent: int, calls: int) -> dict:
    out = subprocess.run([str(runner), str(agent), "--bench", str(calls), str(lib_dir)], check=True,
                         capture_output=True, text=True, env={**os.environ, "TVM_NUM_THREADS": "1"}).stdout
    words = out.split()
    return {k: float(words[words.index(k) + 1]) for k in ("median_us", "p99_us") if k in words} | {"calls": calls}


def soak(runner: Path, lib_dir: Path, agent: int, steps: int) -> dict:
    """Peak resident memory after 10^5 and after `steps` calls of the same robot: flat means no leak.

    robot_runner --bench keeps one double per call and sorts a copy (16 bytes a call): that is taken
    off, so what remains is the runtime's own memory."""
    short, long = _c_bench_raw(runner, lib_dir, agent, 100_000), _c_bench_raw(runner, lib_dir, agent, steps)
    runs = (("short", short, 100_000), ("long", long, steps))
    own = {n: r["peak_rss_kb"] - 16 * calls / 1024 for n, r, calls in runs}
    return {"steps": steps, "peak_rss_kb_1e5": short["peak_rss_kb"], "peak_rss_kb": long["peak_rss_kb"],
            "runtime_rss_kb_1e5": round(own["short"]), "runtime_rss_kb": round(own["long"]),
            "median_us": long["median_us"], "flat": own["long"] <= own["short"] + 256}


def _c_bench_raw(runner: Path, lib_dir: Path, agent: int, calls: int) -> dict:
    out = subprocess.run([str(runner), str(agent), "--bench", str(calls), str(lib_dir)], check=True,
                         capture_output=True, text=True, env={**os.environ, "TVM_NUM_THREADS": "1"}).stdout.split()
    return {k: float(out[out.index(k) + 1]) for k in ("median_us", "peak_rss_kb")}


def bench_bundle(name: str, bundle: Path, work: Path, calls: int, soak_steps: int = 0) -> dict:
    from kdcc.ir.spec import MarlSpec
    from kdcc.targets.tvm.runtime import HostAgent, HostPolicy

    doc = json.loads((bundle / "profile.json").read_text())
    spec = MarlSpec.from_dict(doc["spec"])
    cpu = next(lib for lib in doc["libraries"] if lib["kind"] == "cpu" and lib["arch"] == platform.machine())
    result: dict = {"roles": {}}
    for robot in (r for r in doc["robots"] if r["role"] != "monitor"):
        agent = robot["agents"][0]
        from kdcc.ir.agent_step import agent_example_inputs
        from kdcc.ir.roles import role_of

        lib = bundle / robot["libraries"][cpu["device"]]["path"]
        role = role_of(spec, agent)
        host = HostAgent(lib, agent_example_inputs(spec, role), role.n_actions, agent if role.shared else None)
        g = np.random.default_rng(agent)
        own = g.standard_normal((256, role.obs_dim)).astype(np.float32)
        count = iter(range(10**9))

        def python_step():
            i = next(count)
            if i % EPISODE == 0:
                host.reset()
            host.act(own[i % 256])
        row = {"agents": robot["agents"], "library_bytes": robot["libraries"][cpu["device"]]["bytes"],
               "flops": robot["cost"]["flops"], "estimate_us": robot["cost"]["devices"][cpu["device"]]["latency_us"],
               "python": _median_us(python_step, calls),
               "onnxruntime": _median_us(_agent_loop(_ort(bundle / robot["onnx"]), robot, agent), calls)}
        runner = _c_runner(bundle, work / name, robot["role"])
        if runner is not None:
            row["c"] = _c_bench(runner, lib.parent, agent, calls)
            if soak_steps:
                row["soak"] = soak(runner, lib.parent, agent, soak_steps)
        result["roles"][robot["role"]] = row
    team = HostPolicy(bundle / cpu["path"], spec)
    g = np.random.default_rng(0)
    obs = g.standard_normal((spec.n_agents, spec.obs_dim)).astype(np.float32)
    state, last = g.standard_normal(spec.state_dim).astype(np.float32), np.full(spec.n_agents, -1, np.int64)
    result["team_step"] = {"python": _median_us(lambda: team.step(obs, last, state), calls // 4),
                           "flops": doc["cost"]["flops"]}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--work", default=str(ROOT / "build" / "bench" / "per_agent"))
    ap.add_argument("--soak", type=int, default=10_000_000, help="C calls of the soak run (0: none)")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = "1"
    work = Path(args.work)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "calls": args.calls, "teachers": {}}
    for name, teacher in TEACHERS.items():
        bundle = work / name / "bundle"
        subprocess.run([sys.executable, "-m", "kdcc", "compile", str(teacher), "--target", "host", "-o", str(bundle),
                        "--force", "-q", "--keep", "off"], check=True)
        out["teachers"][name] = bench_bundle(name, bundle, work, args.calls, args.soak if name == "spread" else 0)
        for role, row in out["teachers"][name]["roles"].items():
            c = row.get("c", {}).get("median_us", "-")
            print(f"{name} {role}: C {c} µs, Python {row['python']['median_us']} µs, ONNX Runtime "
                  f"{row['onnxruntime']['median_us']} µs, library {row['library_bytes']:,} B")
        print(f"{name} team step (Python): {out['teachers'][name]['team_step']['python']['median_us']} µs")
    (ROOT / "bench" / "per_agent.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
