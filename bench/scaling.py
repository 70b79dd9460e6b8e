"""How cost grows with the team: spread teams of N agents, compiled, timed and sized.

    python bench/scaling.py [--agents 3,6,12,24,48] [--calls 20000] [--work build/bench/scaling]

For each N a QMIX teacher of the example's shape (GRU 64, hypernet 64) is built with random
weights — fidelity is not the point here, the cost of compiling and running a team of N is —
and compiled for this machine (`--target host`, 10× fewer FLOPs per robot — 30× is below the
smallest student of a GRU-64 teacher from N = 6 — else 5×, 2× where even that is below it; a short distillation so the run stays in
minutes: `--opt distill.steps=50 --opt distill.dagger_every=0`, dataset of 8 episodes).
Recorded per N: compile wall time and peak memory (a fresh process: VmHWM from /proc), FLOPs
of the team step and of one agent step, the team step and one agent step (median of --calls
calls, one thread, from Python through the compiled libraries), and the libraries' sizes, for
the Relax VM libraries and their VM-free forms (`.direct.so`). Writes bench/scaling.json,
bench/scaling.png and its section of bench/results.md. In simple_spread the observation grows
with N (every landmark and every other agent), so one agent step grows with N too; the team
step about as N times that.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _sections import write_section  # noqa: E402


def _teacher(path: Path, n: int) -> dict:
    import torch

    from kdcc.inputs.teacher import save_teacher
    from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
    from kdcc.marl.worlds import env_dims
    from kdcc.marl.qmix import build_agent, build_mixer

    env = EnvSpec("simple_spread_v3", {"N": n, "max_cycles": 25})
    dims = env_dims(env)
    spec = MarlSpec(n_agents=n, obs_dim=dims["obs_dim"], state_dim=dims["state_dim"], n_actions=dims["n_actions"],
                    agent=AgentSpec("rnn", 64), mixer=MixerSpec("qmix", 32, 2, 64), env=env)
    torch.manual_seed(n)
    save_teacher(path, spec, build_agent(spec), build_mixer(spec), {"trainer": "bench/scaling.py (untrained)"})
    return {"obs_dim": spec.obs_dim, "state_dim": spec.state_dim}


BUDGETS = ("10x", "5x", "2x")  # per robot; the next when the smallest student of a large N costs more


def _compile(teacher: Path, data: Path, out: Path) -> dict:
    """A fresh process; its wall time and peak resident memory (VmHWM of the child, via wait4)."""
    for budget in BUDGETS:
        cmd = [sys.executable, "-m", "kdcc", "compile", str(teacher), "--target", "host", "--dataset", str(data),
               "-o", str(out), "--force", "-q", "--budget-flops", budget, "--keep", "off", "--certify-episodes", "0",
               "--opt", "distill.steps=50", "--opt", "distill.dagger_every=0"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env={**os.environ, "TVM_NUM_THREADS": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
        if not status:
            return {"budget": budget, "compile_s": round(time.perf_counter() - start, 2),
                    "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    raise SystemExit(f"compile of {teacher} failed at every budget ({', '.join(BUDGETS)})")


def _median_us(call, calls: int) -> float:
    for _ in range(calls // 10):
        call()
    out = np.empty(calls)
    for k in range(calls):
        t0 = time.perf_counter_ns()
        call()
        out[k] = time.perf_counter_ns() - t0
    return round(float(np.median(out)) / 1e3, 3)


def _steps(bundle: Path, calls: int) -> dict:
    from kdcc.ir.agent_step import agent_example_inputs
    from kdcc.ir.roles import team_roles
    from kdcc.ir.spec import MarlSpec
    from kdcc.targets.tvm.direct_runtime import DirectPolicy, DirectStep
    from kdcc.targets.tvm.runtime import HostPolicy, HostStep

    doc = json.loads((bundle / "profile.json").read_text())
    spec = MarlSpec.from_dict(doc["spec"])
    lib = next(lib for lib in doc["libraries"] if lib["kind"] == "cpu")
    team = HostPolicy(bundle / lib["path"], spec)
    g = np.random.default_rng(0)
    obs = g.standard_normal((spec.n_agents, spec.obs_dim)).astype(np.float32)
    state, last = g.standard_normal(spec.state_dim).astype(np.float32), np.full(spec.n_agents, -1, np.int64)
    role = team_roles(spec)[0]
    robot = next(r for r in doc["robots"] if r["role"] == role.name)
    agent_lib = robot["libraries"][lib["device"]]
    agent = HostStep(bundle / agent_lib["path"], agent_example_inputs(spec, role))
    args = [a.numpy() for a in agent_example_inputs(spec, role)]
    direct_team = DirectPolicy(bundle / lib["direct"]["path"], spec)
    direct_agent = DirectStep(bundle / agent_lib["direct"]["path"], args, agent(*args))
    return {"team_step_us": _median_us(lambda: team.step(obs, last, state), calls),
            "agent_step_us": _median_us(lambda: agent(*args), calls),
            "team_step_direct_us": _median_us(lambda: direct_team.step(obs, last, state), calls),
            "agent_step_direct_us": _median_us(direct_agent.run, calls),
            "team_direct_bytes": lib["direct"]["bytes"], "agent_direct_bytes": agent_lib["direct"]["bytes"],
            "team_flops": doc["cost"]["flops"], "agent_flops": robot["cost"]["flops"],
            "team_library_bytes": (bundle / lib["path"]).stat().st_size,
            "agent_library_bytes": robot["libraries"][lib["device"]]["bytes"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", default="3,6,12,24,48")
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--work", default=str(ROOT / "build" / "bench" / "scaling"))
    ap.add_argument("--reuse", action="store_true", help="keep the rows of team sizes already measured under --work")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = "1"
    from kdcc.api import collect

    rows = []
    for n in (int(x) for x in args.agents.split(",")):
        work = Path(args.work) / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        if args.reuse and (work / "row.json").is_file():
            rows.append(json.loads((work / "row.json").read_text()))
            continue
        dims = _teacher(work / "teacher.pt", n)
        collect(work / "teacher.pt", work / "data.npz", episodes=8, seed=1)
        row = {"n_agents": n, **dims, **_compile(work / "teacher.pt", work / "data.npz", work / "bundle"),
               **_steps(work / "bundle", args.calls)}
        (work / "row.json").write_text(json.dumps(row) + "\n")
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": os.uname().machine, "cores": os.cpu_count(),
           "self_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "note": "untrained teachers: cost, not fidelity", "rows": rows}
    (ROOT / "bench" / "scaling.json").write_text(json.dumps(doc, indent=2) + "\n")
    _plot(rows, ROOT / "bench" / "scaling.png")
    write_section("scaling", _markdown(doc))
    return 0


def _markdown(doc: dict) -> str:
    head = ("| agents | obs | budget | compile s | compile peak MB | team FLOPs | agent FLOPs | team step µs (VM / VM-free) "
            "| agent step µs (VM / VM-free run) | team library kB (VM / VM-free) | agent library kB (VM / VM-free) |")
    lines = ["## How cost grows with the team (bench/scaling.py)", "",
             f"Measured {doc['date']} on {doc['machine']}, {doc['cores']} cores (shared). Spread teams of N agents, "
             "teachers of the example's shape with random weights (cost, not fidelity, is measured: the students "
             "are not trained to any score), compiled `--target host` with a short distillation; steps from Python, "
             "one thread, medians. ![scaling](scaling.png)", "", head, "|" + "--:|" * 11]
    for r in doc["rows"]:
        lines.append(f"| {r['n_agents']} | {r['obs_dim']} | {r.get('budget', '10x')} | {r['compile_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['team_flops']:,} | {r['agent_flops']:,} | {r['team_step_us']:.2f} / {r['team_step_direct_us']:.2f} | "
                     f"{r['agent_step_us']:.2f} / {r['agent_step_direct_us']:.2f} | "
                     f"{r['team_library_bytes'] / 1e3:.0f} / {r['team_direct_bytes'] / 1e3:.0f} | "
                     f"{r['agent_library_bytes'] / 1e3:.0f} / {r['agent_direct_bytes'] / 1e3:.0f} |")
    first, last = doc["rows"][0], doc["rows"][-1]
    grow = last["n_agents"] / first["n_agents"]
    lines += ["", f"From {first['n_agents']} to {last['n_agents']} agents ({grow:.0f}×): one agent's step "
              f"{last['agent_flops'] / first['agent_flops']:.1f}× the FLOPs (its observation, {first['obs_dim']} → "
              f"{last['obs_dim']}, holds every other agent), the team step "
              f"{last['team_flops'] / first['team_flops']:.0f}×: N agents each reading an observation ∝ N, and the "
              f"mixer (team − N·agent: {first['team_flops'] - first['n_agents'] * first['agent_flops']:,} → "
              f"{last['team_flops'] - last['n_agents'] * last['agent_flops']:,} FLOPs) reading the state, all "
              "observations, ∝ N². So the team step grows about as N², not N, in simple_spread; a robot runs the "
              "agent step alone."]
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n = [r["n_agents"] for r in rows]
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    a.plot(n, [r["team_step_us"] for r in rows], "o-", label="team step")
    a.plot(n, [r["agent_step_us"] for r in rows], "s-", label="one agent step")
    a.plot(n, [r["team_step_direct_us"] for r in rows], "o--", label="team step, VM-free")
    a.plot(n, [r["agent_step_direct_us"] for r in rows], "s--", label="agent step, VM-free (run only)")
    a.set(xlabel="agents", ylabel="µs (median, 1 thread)", title="step latency")
    a.legend()
    b.plot(n, [r["compile_s"] for r in rows], "o-")
    b.set(xlabel="agents", ylabel="s", title="kdcc compile wall time")
    c.plot(n, [r["team_library_bytes"] / 1e3 for r in rows], "o-", label="team library")
    c.plot(n, [r["agent_library_bytes"] / 1e3 for r in rows], "s-", label="agent library")
    c.set(xlabel="agents", ylabel="kB", title="library size")
    c.legend()
    fig.savefig(path, dpi=110, metadata={"Software": None})


if __name__ == "__main__":
    raise SystemExit(main())
