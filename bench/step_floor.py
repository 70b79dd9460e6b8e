"""`make bench`: how close a compiled step gets to its arithmetic, VM-free against everything else.

    python bench/step_floor.py [--calls 100000] [--episodes 100] [--work build/bench/floor] [--reuse]

Compiles the example teacher (examples/spread_teacher.pt) at the default budget for this machine
(`--target host`) and for the Orin, then, one thread, medians of --calls calls after warm-up:

  team step    VM-free library from C (bench/step_timer.c: kdcc_step_run on the library's own
               buffers) | VM library from C++ (examples/firmware policy_runner --bench, the
               bundle's kdcc_policy API) | from Python: DirectPolicy.step (VM-free) and
               HostPolicy.step (VM) | ONNX Runtime on student.onnx | torch eager on the student
               module | ExecuTorch + XNNPACK when the optional `executorch` package is installed
  agent step   (one robot, role `agent`) the same: VM-free from C (step_timer, and robot_runner
               --bench through kdcc_agent.h), VM from C++ (robot_runner with KDCC_POLICY_RUNTIME=vm),
               DirectAgent.act / HostAgent.act from Python, ONNX Runtime on agents/agent.onnx
  floor        FLOPs of the step ÷ --peak-gflops (one core's FMA peak; ~180 here)

and checks, on --episodes MPE episodes, that the VM-free team step picks the VM library's actions
on every step with Q within 1e-6. Also records what one robot installs (the orin bundle's
lib/cpu/agent.direct.so against the VM library plus the TVM runtime). Writes bench/step_floor.json
and prints the table with ratios; never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import write_section  # noqa: E402
from per_agent import _median_us, _ort  # noqa: E402  (the bench's shared timing helpers)

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "examples" / "spread_teacher.pt"


def _compile(target: str, out: Path, save: Path, reuse: bool) -> None:
    if reuse and (out / "profile.json").is_file():
        return
    subprocess.run([sys.executable, str(ROOT / "bench" / "_kdcc_compile.py"), str(save), "--", "compile", str(TEACHER),
                    "--target", target, "-o", str(out), "--force", "-q", "--keep", "off"], check=True)


def _words(text: str) -> dict[str, float]:
    words = text.split()
    return {k: float(v) for k, v in zip(words[::2], words[1::2])}


def _step_timer(work: Path, library: Path, calls: int) -> dict:
    exe = work / "step_timer"
    if not exe.exists():
        subprocess.run(["cc", "-O2", str(ROOT / "bench" / "step_timer.c"), "-o", str(exe), "-ldl"], check=True)
    out = _words(subprocess.run([str(exe), str(library), str(calls)], check=True, capture_output=True,
                                text=True).stdout)
    return {"median_us": out["median_ns"] / 1e3, "p99_us": out["p99_ns"] / 1e3, "mean_us": out["mean_ns"] / 1e3,
            "calls": calls}


def _firmware(bundle: Path, build: Path, target: str, runtime: str) -> Path | None:
    try:
        subprocess.run(["cmake", "-S", str(ROOT / "examples" / "firmware"), "-B", str(build), f"-Dkdcc_policy_DIR={bundle}",
                        "-DCMAKE_BUILD_TYPE=Release", f"-DKDCC_POLICY_RUNTIME={runtime}"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build), "--target", target, "-j2"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"  {target} ({runtime}) not built: {e}", file=sys.stderr)
        return None
    return build / target


def _runner_bench(cmd: list, calls: int) -> dict:
    out = _words(subprocess.run([*map(str, cmd[:-1]), "--bench", str(calls), str(cmd[-1])], check=True,
                                capture_output=True, text=True, env={**os.environ, "TVM_NUM_THREADS": "1"}).stdout)
    return {"median_us": out["median_us"], "p99_us": out["p99_us"], "calls": calls}


def _executorch(student_pt: Path, inputs, calls: int) -> dict:
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
        from executorch.runtime import Runtime
    except ImportError:
        return {"skipped": "the optional executorch package is not installed (pip install executorch==1.5.1)"}
    import torch

    module = torch.load(student_pt, weights_only=False).eval()
    program = to_edge_transform_and_lower(torch.export.export(module, inputs),
                                          partitioner=[XnnpackPartitioner()]).to_executorch()
    method = Runtime.get().load_program(program.buffer).load_method("forward")
    return _median_us(lambda: method.execute(list(inputs)), calls)


def _equal_over_episodes(bundle: Path, episodes: int) -> dict:
    from kdcc.ir.spec import MarlSpec
    from kdcc.marl.worlds import make_env
    from kdcc.marl.rollout import run_episodes
    from kdcc.targets.tvm.direct_runtime import DirectPolicy
    from kdcc.targets.tvm.runtime import HostPolicy

    doc = json.loads((bundle / "profile.json").read_text())
    spec, lib = MarlSpec.from_dict(doc["spec"]), doc["libraries"][0]
    direct, vm = DirectPolicy(bundle / lib["direct"]["path"], spec), HostPolicy(bundle / lib["path"], spec)
    tally = {"steps": 0, "action_mismatches": 0, "max_abs_q_diff": 0.0}

    class Both:
        def reset(self):
            direct.reset()
            vm.reset()

        def step(self, obs, last, state):
            hidden = direct.inputs[2].copy()
            got, want = direct.call(obs, last, hidden, state), vm.call(obs, last, hidden, state)
            tally["steps"] += 1
            tally["action_mismatches"] += int(not np.array_equal(got[0], want[0]))
            tally["max_abs_q_diff"] = max(tally["max_abs_q_diff"], float(np.max(np.abs(got[1] - want[1]))),
                                          float(np.max(np.abs(got[3] - want[3]))))
            vm.step(obs, last, state)
            return direct.step(obs, last, state)[0]

    run_episodes(make_env(spec.env), Both(), episodes, seed=0)
    return {**tally, "episodes": episodes}


def _team(bundle: Path, work: Path, save: Path, calls: int, peak: float) -> dict:
    import torch

    from kdcc.ir.spec import MarlSpec
    from kdcc.ir.team import team_example_inputs
    from kdcc.targets.tvm.direct_runtime import DirectPolicy
    from kdcc.targets.tvm.runtime import HostPolicy

    doc = json.loads((bundle / "profile.json").read_text())
    spec, lib = MarlSpec.from_dict(doc["spec"]), doc["libraries"][0]
    g = np.random.default_rng(0)
    obs = g.standard_normal((spec.n_agents, spec.obs_dim)).astype(np.float32)
    state, last = g.standard_normal(spec.state_dim).astype(np.float32), np.zeros(spec.n_agents, np.int64)
    direct, vm = DirectPolicy(bundle / lib["direct"]["path"], spec), HostPolicy(bundle / lib["path"], spec)
    session = _ort(bundle / "student.onnx")
    hidden = np.zeros((spec.n_agents, spec.agent.hidden_dim), np.float32)
    module = torch.load(save / "student.pt", weights_only=False).eval()
    inputs = team_example_inputs(spec)
    row = {"flops": doc["cost"]["flops"], "floor_us": doc["cost"]["flops"] / (peak * 1e3),
           "c_direct": _step_timer(work, bundle / lib["direct"]["path"], calls),
           "python_direct": _median_us(lambda: direct.step(obs, last, state), calls),
           "python_vm": _median_us(lambda: vm.step(obs, last, state), calls),
           "onnxruntime": _median_us(lambda: session(obs, last, hidden, state), calls // 4)}
    with torch.no_grad():
        row["torch_eager"] = _median_us(lambda: module(*inputs), calls // 10)
    row["executorch_xnnpack"] = _executorch(save / "student.pt", inputs, calls // 4)
    runner = _firmware(bundle, work / "fw-vm", "policy_runner", "vm")
    if runner is not None:
        row["c_vm"] = _runner_bench([runner, bundle / "lib" / lib["device"]], calls)
    return row


def _agent(bundle: Path, work: Path, calls: int, peak: float) -> dict:
    from kdcc.ir.agent_step import agent_example_inputs
    from kdcc.ir.roles import role_of
    from kdcc.ir.spec import MarlSpec
    from kdcc.targets.tvm.direct_runtime import DirectAgent
    from kdcc.targets.tvm.runtime import HostAgent

    doc = json.loads((bundle / "profile.json").read_text())
    spec = MarlSpec.from_dict(doc["spec"])
    robot = next(r for r in doc["robots"] if r["role"] == "agent")
    lib, role = robot["libraries"]["cpu"], role_of(spec, 0)
    inputs = agent_example_inputs(spec, role)
    outputs = (np.zeros(1, np.int64), np.zeros((1, role.n_actions), np.float32),
               np.zeros((1, role.hidden_dim), np.float32))
    direct = DirectAgent(bundle / lib["direct"]["path"], inputs, outputs, agent_id=0)
    vm = HostAgent(bundle / lib["path"], inputs, role.n_actions, agent_id=0)
    obs = np.random.default_rng(1).standard_normal((1, role.obs_dim)).astype(np.float32)
    session = _ort(bundle / robot["onnx"])
    hidden = np.zeros((1, role.hidden_dim), np.float32)
    row = {"flops": robot["cost"]["flops"], "floor_us": robot["cost"]["flops"] / (peak * 1e3),
           "c_direct": _step_timer(work, bundle / lib["direct"]["path"], calls),
           "python_direct": _median_us(lambda: direct.act(obs), calls),
           "python_vm": _median_us(lambda: vm.act(obs), calls),
           "onnxruntime": _median_us(lambda: session(obs, np.array([0]), hidden, np.array([0])), calls // 4)}
    for runtime in ("direct", "vm"):
        runner = _firmware(bundle, work / f"fw-agent-{runtime}", "robot_runner", runtime)
        if runner is not None:
            row[f"c_api_{runtime}"] = _runner_bench([runner, 0, bundle / "lib" / "cpu"], calls)
    return row


def _footprint(orin: Path) -> dict:
    doc = json.loads((orin / "profile.json").read_text())
    lib = next(r for r in doc["robots"] if r["role"] == "agent")["libraries"]["cpu"]
    runtime = sum(p.stat().st_size for p in (orin / "runtime" / "aarch64").iterdir())
    return {"vm_free_bytes": lib["direct"]["bytes"], "vm_library_bytes": lib["bytes"],
            "tvm_runtime_bytes": runtime, "vm_total_bytes": lib["bytes"] + runtime}


_ROWS = {"c_direct": "VM-free library from C (`kdcc_step_run`, bench/step_timer.c)",
         "c_api_direct": "VM-free, through the C API (`kdcc_agent_step`, robot_runner --bench)",
         "c_vm": "Relax VM from C++ (`kdcc_policy_step`, policy_runner --bench)",
         "c_api_vm": "Relax VM from C++ (`kdcc_agent_step`, robot_runner --bench, KDCC_POLICY_RUNTIME=vm)",
         "python_direct": "VM-free from Python (`DirectPolicy.step` / `DirectAgent.act`, what kdcc eval runs)",
         "python_vm": "Relax VM from Python (`HostPolicy.step` / `HostAgent.act`)",
         "onnxruntime": "ONNX Runtime, Python, same graph (session.run)",
         "torch_eager": "torch eager, the student module",
         "executorch_xnnpack": "ExecuTorch + XNNPACK (optional package)"}


def _markdown(out: dict) -> str:
    lines = ["## VM-free step against the alternatives (bench/step_floor.py)", "",
             f"Measured {out['date']} on {out['machine']}, {out['cores']} cores (1-minute load {out['load_1min']:.1f} "
             f"at the end: the machine is shared, so absolute times are inflated), one thread, medians of "
             f"{out['calls']:,} calls after warm-up; the example teacher's default student (`--target host`). "
             f"Floor: FLOPs ÷ {out['peak_gflops']:.0f} GFLOP/s (one core's FMA peak).", ""]
    for step in ("team", "agent"):
        row = out[step]
        base = row["c_direct"]["median_us"]
        lines += [f"**{step} step** ({row['flops']:,} FLOPs, floor {row['floor_us']:.3f} µs)", "",
                  "| runtime | median µs | p99 µs | ÷ VM-free C |", "|---|--:|--:|--:|"]
        for key, what in _ROWS.items():
            value = row.get(key)
            if isinstance(value, dict) and "median_us" in value:
                lines.append(f"| {what} | {value['median_us']:.3f} | {value['p99_us']:.3f} | "
                             f"{value['median_us'] / base:.1f}× |")
            elif isinstance(value, dict) and "skipped" in value:
                lines.append(f"| {what} | — | — | {value['skipped']} |")
        lines.append("")
    eq, fp = out["equality"], out["footprint"]
    lines += [f"VM-free vs VM team step over {eq['episodes']} MPE episodes ({eq['steps']:,} steps): "
              f"{eq['action_mismatches']} action mismatches, max |ΔQ|, |ΔQ_tot| {eq['max_abs_q_diff']:.3g}.", "",
              f"What one Orin robot installs (role `agent`, aarch64): VM-free `agent.direct.so` "
              f"{fp['vm_free_bytes']:,} B, nothing else; with the VM, `agent.so` {fp['vm_library_bytes']:,} B + "
              f"the TVM runtime {fp['tvm_runtime_bytes']:,} B = {fp['vm_total_bytes']:,} B."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--peak-gflops", type=float, default=180.0, help="one core's fp32 FMA peak")
    ap.add_argument("--work", default=str(ROOT / "build" / "bench" / "floor"))
    ap.add_argument("--reuse", action="store_true", help="keep bundles already compiled under --work")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    host, orin = work / "host", work / "orin"
    _compile("host", host, work / "save-host", args.reuse)
    _compile("orin", orin, work / "save-orin", args.reuse)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "load_1min": os.getloadavg()[0], "calls": args.calls,
           "peak_gflops": args.peak_gflops,
           "team": _team(host, work, work / "save-host", args.calls, args.peak_gflops),
           "agent": _agent(host, work, args.calls, args.peak_gflops),
           "equality": _equal_over_episodes(host, args.episodes), "footprint": _footprint(orin)}
    (ROOT / "bench" / "step_floor.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    for step in ("team", "agent"):
        row = out[step]
        base = row["c_direct"]["median_us"]
        print(f"{step} step ({row['flops']:,} FLOPs, floor {row['floor_us']:.3f} µs):")
        for name, value in row.items():
            if isinstance(value, dict) and "median_us" in value:
                print(f"  {name:20s} {value['median_us']:8.3f} µs  ({value['median_us'] / base:5.1f}× VM-free C)")
            elif isinstance(value, dict) and "skipped" in value:
                print(f"  {name:20s} skipped: {value['skipped']}")
    print(f"equality over {out['equality']['episodes']} episodes: {out['equality']}")
    write_section("step_floor", _markdown(out))
    print(f"one robot installs: {out['footprint']}")
    shutil.rmtree(work / "fw-vm", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
