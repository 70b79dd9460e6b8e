"""`make bench`: kdcc against the alternatives on the example teacher, on this machine, in one run.

    python bench/run.py [--calls 5000] [--episodes 100] [--budget-episodes 100] [--work build/bench]

Steps (each timed; the whole run is meant to take well under 15 minutes on 2 cores):

 1. `kdcc calibrate --target host -o bench/host.toml`: this machine's overheads and throughput.
 2. `kdcc compile examples/spread_teacher.pt --target bench/host.toml --budget-flops 30x` (the
    default budget) into a host bundle, wall-timed as a fresh process; then the 10x and 100x
    budgets with `--no-build` (passes only) for the Pareto of budgets. Each compile also saves
    its student as a torch module (bench/_kdcc_compile.py runs the CLI unchanged, then saves).
 3. The teacher built uncompressed by the same TVM backend (bench/_teacher_tvm.py), so the cost
    model is checked on a wide graph too; and examples/firmware built with CMake (Release).
 4. Latency per team step, single thread (two processes, pooled) and default threads (one),
    all variants interleaved in rounds inside each process (bench/_variants.py):
    teacher and student in torch eager, student in ONNX Runtime (IO binding), student compiled
    by kdcc through HostPolicy (as `kdcc eval BUNDLE` calls it) and the raw calls; then
    `policy_runner --bench N` (C++, the bundle's C API) 10 runs per setting, alternating.
 5. Peak memory (VmHWM, the process's own peak resident set) of a fresh process that loads one
    variant and steps it 1000 times, for each variant and the C++ runner.
 6. Normalised MPE score over 100 episodes (seeds 0-99): teacher and compiled student with
    `kdcc.api.evaluate`, the torch students of every budget with the same seeds.
 7. bench/results.json, bench/results.md (tables: date, machine, ratios, goals) and
    bench/results.png (latency vs score; Pareto of budgets); the table is also put into
    bench/README.md between its "results" markers.

Intermediate outputs go to build/bench/ (ignored by git).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
TEACHER = ROOT / "examples" / "spread_teacher.pt"
FIRMWARE = ROOT / "examples" / "firmware"
PY = sys.executable
BUDGETS = ("10x", "30x", "100x")
MAIN_BUDGET = "30x"  # kdcc compile's default

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[bench {time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def run(cmd: list[str], env: dict | None = None, cwd: Path = ROOT, check: bool = True) -> tuple[float, str]:
    """Run a command; return (wall seconds, stdout). Output is shown only on failure."""
    started = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"bench: {' '.join(map(str, cmd))} failed with exit status {proc.returncode}")
    return wall, proc.stdout


def env_threads(threads: str) -> dict:
    env = dict(os.environ)
    env.pop("TVM_NUM_THREADS", None)
    if threads == "1":
        env["TVM_NUM_THREADS"] = "1"
    return env


def machine() -> dict:
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        info["cpu_model"] = fields.get("Model name", "").strip()
        info["cpus"] = int(fields.get("CPU(s)", "0").strip() or 0)
        info["cores_per_socket"] = int(fields.get("Core(s) per socket", "0").strip() or 0)
        flags = fields.get("Flags", "")
        info["isa"] = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags.split()]
    except OSError:
        info["cpu_model"], info["cpus"] = platform.processor(), os.cpu_count()
    info["load_avg_start"] = list(os.getloadavg())
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True)
        info["git_head"] = head.stdout.strip()
        info["git_modified"] = [line[3:] for line in dirty.stdout.splitlines()]
    except OSError:
        pass
    import importlib.metadata as md

    info["versions"] = {p: md.version(p) for p in ("torch", "onnxruntime", "onnx", "onnxsim", "apache-tvm",
                                                   "apache-tvm-ffi", "numpy", "mpe2")}
    return info


def kdcc_compile(save: Path, out: Path, budget: str, target: Path, build: bool) -> tuple[float, dict]:
    cmd = [PY, BENCH / "_kdcc_compile.py", save, "--", "compile", TEACHER, "--target", target, "-o", out,
           "--budget-flops", budget, "--keep", "off", "--force", "-q"] + ([] if build else ["--no-build"])
    wall, _ = run(cmd)
    return wall, json.loads((save / "meta.json").read_text())


def pool(paths: list[Path]) -> dict:
    """Every call of every latency process of one thread setting, as one distribution per variant."""
    import numpy as np

    docs = [json.loads(p.read_text()) for p in paths]
    arrays = [np.load(p.with_suffix(".npz")) for p in paths]
    out = {**docs[0], "calls": sum(d["calls"] for d in docs), "rounds": sum(d["rounds"] for d in docs),
           "processes": len(docs),
           "wall_s": sum(d["wall_s"] for d in docs), "variants": {},
           "agreement": {k: {**v, "actions_equal": all(d["agreement"][k]["actions_equal"] for d in docs),
                             "max_abs_dq_tot": max(d["agreement"][k]["max_abs_dq_tot"] for d in docs)}
                         for k, v in docs[0]["agreement"].items()}}
    for name in docs[0]["variants"]:
        us = np.concatenate([a[name] for a in arrays]) / 1e3
        out["variants"][name] = {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
                                 "mean_us": float(us.mean()), "min_us": float(us.min()),
                                 "process_medians_us": [d["variants"][name]["median_us"] for d in docs],
                                 "round_medians_us": [m for d in docs for m in d["variants"][name]["round_medians_us"]]}
    return out


def cpp_latency(runner: Path, lib_dir: Path, calls: int, reps: int) -> dict:
    out: dict[str, dict] = {}
    raw: dict[str, list] = {"1": [], "default": []}
    for _ in range(reps):  # alternate the settings, as the Python variants are interleaved
        for threads in raw:
            _, text = run([runner, "--bench", calls, lib_dir], env=env_threads(threads))
            m = re.search(r"median_us ([0-9.]+) p99_us ([0-9.]+) mean_us ([0-9.]+)", text)
            raw[threads].append({"median_us": float(m[1]), "p99_us": float(m[2]), "mean_us": float(m[3])})
    for threads, runs in raw.items():  # medians over the runs (processes) of each statistic
        out[threads] = {"median_us": statistics.median(r["median_us"] for r in runs),
                        "p99_us": statistics.median(r["p99_us"] for r in runs),
                        "mean_us": statistics.median(r["mean_us"] for r in runs),
                        "process_medians_us": [r["median_us"] for r in runs],
                        "calls": calls * reps, "runs": runs}
    return out


def scores(bundle: Path, students: dict[str, tuple[Path, Path]], episodes: int, budget_episodes: int) -> dict:
    """Normalised scores: teacher and compiled student via kdcc.api.evaluate, torch students on the same seeds."""
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    import numpy as np
    import torch

    from kdcc.api import evaluate, load_policy
    from kdcc.core.progress import set_quiet
    from kdcc.ir.spec import MarlSpec
    from kdcc.marl.worlds import make_env
    from kdcc.marl.rollout import RandomPolicy, TorchPolicy, run_episodes

    set_quiet(True)
    torch.set_num_threads(1)
    started = time.perf_counter()
    ev = evaluate(bundle, episodes, 0, TEACHER)
    out = {"episodes": episodes, "seed": 0, "random_mean": ev.random_mean, "teacher_mean": ev.teacher_mean,
           "compiled_student": {"mean": ev.mean, "std": ev.std, "normalised": ev.normalised},
           "eval_wall_s": time.perf_counter() - started, "torch_students": {}}
    gap = ev.teacher_mean - ev.random_mean
    # Per-episode returns on the same seeds, for paired standard errors of the normalised scores
    # (episode starts vary a lot, the difference between two policies on one start much less).
    t_spec, t_policy, _ = load_policy(TEACHER)
    env = make_env(t_spec.env)
    teacher_returns = run_episodes(env, t_policy, max(episodes, budget_episodes), 0).returns
    _, c_policy, _ = load_policy(bundle)
    compiled_returns = run_episodes(env, c_policy, episodes, 0).returns

    def paired_se(returns):
        diff = np.asarray(returns) - teacher_returns[:len(returns)]
        return float(diff.std(ddof=1) / np.sqrt(len(diff)) / abs(gap))

    out["compiled_student"]["paired_se"] = paired_se(compiled_returns)
    out["compiled_student"]["matches_evaluate"] = bool(abs(compiled_returns.mean() - ev.mean) < 1e-6)
    for name, (path, meta) in students.items():
        started = time.perf_counter()
        spec = MarlSpec.from_dict(json.loads(meta.read_text())["spec"])
        stats = run_episodes(env, TorchPolicy(spec, torch.load(path, weights_only=False).eval()), budget_episodes, 0)
        random_mean, teacher_mean = ev.random_mean, ev.teacher_mean
        if budget_episodes != episodes:  # the same seeds for the reference points
            random_mean = run_episodes(env, RandomPolicy(env.avail, 0), budget_episodes, 0).mean
            teacher_mean = float(teacher_returns[:budget_episodes].mean())
        out["torch_students"][name] = {"episodes": budget_episodes, "mean": stats.mean, "std": stats.std,
                                       "normalised": (stats.mean - random_mean) / (teacher_mean - random_mean),
                                       "paired_se": paired_se(stats.returns),
                                       "wall_s": time.perf_counter() - started}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5000, help="timed calls per variant and thread setting")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds the calls are split into")
    ap.add_argument("--processes", type=int, default=2, help="single-thread latency processes (pooled)")
    ap.add_argument("--max-latency-wall", type=float, default=150.0,
                    help="seconds after which a latency process stops at the end of its round")
    ap.add_argument("--episodes", type=int, default=100, help="MPE episodes for the teacher and compiled student")
    ap.add_argument("--budget-episodes", type=int, default=100,
                    help="MPE episodes per budget's torch student (lowered to 30 when the run is late)")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "bench", help="intermediate outputs")
    ap.add_argument("--out", type=Path, default=BENCH, help="where results.{json,md,png} go")
    ap.add_argument("--reuse", action="store_true", help="reuse calibration and compiles in --work (development)")
    args = ap.parse_args()
    if args.calls < 5000:
        log(f"note: --calls {args.calls} is below the 5000 the benchmark asks for")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    log(f"{info['cpu_model']}, {info['cpus']} CPUs, load average {info['load_avg_start'][0]:.2f}; "
        f"git {info.get('git_head')} (modified: {', '.join(info.get('git_modified', [])) or 'none'})")
    timings: dict[str, float] = {}
    target = BENCH / "host.toml"

    # 1. calibrate
    if not (args.reuse and target.is_file()):
        timings["calibrate_s"], _ = run([PY, "-m", "kdcc.cli.app", "calibrate", "--target", "host", "-o", target, "-q"])
        log(f"kdcc calibrate: {timings['calibrate_s']:.1f} s")
    calibration = {k: float(v) for k, v in re.findall(r"^(\w+)\s*=\s*([0-9.]+)\s*# calibrated", target.read_text(), re.M)}
    calibration["peak_gflops_fp32"] = float(re.search(r"peak_gflops\s*=\s*\{\s*fp32\s*=\s*([0-9.]+)", target.read_text())[1])

    # 2. compiles
    compiles: dict[str, dict] = {}
    students: dict[str, tuple[Path, Path]] = {}
    bundle = work / "bundle"
    for budget in (MAIN_BUDGET, *[b for b in BUDGETS if b != MAIN_BUDGET]):
        build = budget == MAIN_BUDGET
        save, out = work / f"student_{budget}", (bundle if build else work / f"compile_{budget}")
        if args.reuse and (save / "meta.json").is_file():
            wall, meta = json.loads((save / "wall.json").read_text())["wall_s"], json.loads((save / "meta.json").read_text())
        else:
            wall, meta = kdcc_compile(save, out, budget, target, build)
            (save / "wall.json").write_text(json.dumps({"wall_s": wall}))
        compiles[budget] = {"wall_s": wall, "build": build, **meta}
        students[budget] = (save / "student.pt", save / "meta.json")
        log(f"kdcc compile --budget-flops {budget}{'' if build else ' --no-build'}: {wall:.1f} s "
            f"({meta['student_metrics']['flops']:,} FLOPs, est. {meta['student_metrics']['latency_us']:.2f} µs)")

    # 3. teacher through TVM, firmware
    teacher_tvm = work / "teacher_tvm"
    if not (args.reuse and (teacher_tvm / "profile.json").is_file()):
        shutil.rmtree(teacher_tvm, ignore_errors=True)
        timings["teacher_tvm_s"], _ = run([PY, BENCH / "_teacher_tvm.py", TEACHER, target, teacher_tvm])
        log(f"teacher built uncompressed with TVM: {timings['teacher_tvm_s']:.1f} s")
    teacher_doc = json.loads((teacher_tvm / "profile.json").read_text())
    fw = work / "fw"
    shutil.rmtree(fw, ignore_errors=True)
    wall_a, _ = run(["cmake", "-S", FIRMWARE, "-B", fw, "-DCMAKE_BUILD_TYPE=Release", f"-Dkdcc_policy_DIR={bundle}"])
    wall_b, _ = run(["cmake", "--build", fw])
    timings["firmware_build_s"] = wall_a + wall_b
    runner = fw / "policy_runner"
    log(f"firmware example built: {timings['firmware_build_s']:.1f} s")

    # 4. latency
    cfg = {"teacher": str(TEACHER), "bundle": str(bundle), "onnx": str(bundle / "student.onnx"),
           "student": str(students[MAIN_BUDGET][0]), "meta": str(students[MAIN_BUDGET][1]),
           "teacher_bundle": str(teacher_tvm), "calls": args.calls, "rounds": args.rounds, "warmup": 500,
           "max_wall_s": args.max_latency_wall,
           "extra_students": {f"student_eager_{b}": [str(p) for p in students[b]] for b in BUDGETS if b != MAIN_BUDGET}}
    # Two processes per thread setting, alternating, pooled: on this KVM guest a process's speed can
    # land in a slow mode (~1.5x) for its whole life, even on an idle machine (seen with the C++ runner).
    # Default threads: one process, and no extra students (torch's pool on a busy 2-core machine
    # has 30 ms stalls that make those runs long); a process stops early past --max-latency-wall.
    parts: dict[str, list] = {"1": [], "default": []}
    for rep in range(args.processes):
        for threads in parts if rep == 0 else ["1"]:
            cfg_path, out_path = work / f"latency_{threads}.cfg.json", work / f"latency_{threads}_{rep}.json"
            cfg_path.write_text(json.dumps({**cfg, "threads": threads}))
            wall, _ = run([PY, BENCH / "_variants.py", "latency", cfg_path, out_path], env=env_threads(threads))
            parts[threads].append(out_path)
            timings[f"latency_{threads}_s"] = timings.get(f"latency_{threads}_s", 0.0) + wall
            log(f"latency, threads={threads}, process {rep + 1}: {wall:.1f} s")
    latency = {threads: pool(paths) for threads, paths in parts.items()}
    cpp = cpp_latency(runner, bundle / "lib" / "cpu", args.calls, reps=10)
    log("latency, C++ firmware: done")
    bad = {k: v for t in latency.values() for k, v in t["agreement"].items() if not v["actions_equal"]}
    if bad:
        log(f"WARNING: variants disagree on actions: {bad}")

    # 5. memory
    memory: dict[str, dict] = {}
    mem_cfg = work / "latency_1.cfg.json"
    for variant in ("python_numpy", "teacher_eager", "student_eager", "student_ort", "compiled"):
        _, text = run([PY, BENCH / "_variants.py", "memory", mem_cfg, variant], env=env_threads("1"))
        memory[variant] = json.loads(text.strip().splitlines()[-1])
    _, text = run([runner, "--bench", 1000, bundle / "lib" / "cpu"], env=env_threads("1"))
    memory["cpp_firmware"] = {"peak_rss_bytes": int(re.search(r"peak_rss_kb (\d+)", text)[1]) * 1024,
                              "modules": ["libtvm_runtime"]}
    log("peak memory: " + ", ".join(f"{k} {v['peak_rss_bytes'] / 2**20:.0f} MiB" for k, v in memory.items()))

    # 6. scores (lower the budgets' episodes if the run is late, and say so)
    budget_episodes = args.budget_episodes
    if time.perf_counter() - T0 > 11 * 60 and budget_episodes > 30:
        budget_episodes = 30
        log("late: the budgets' torch students are scored over 30 episodes")
    score = scores(bundle, students, args.episodes, budget_episodes)
    log(f"scores: compiled student {score['compiled_student']['normalised']:.3f}, "
        + ", ".join(f"torch {k} {v['normalised']:.3f}" for k, v in score["torch_students"].items()))

    info["load_avg_end"] = list(os.getloadavg())
    timings["total_s"] = time.perf_counter() - T0
    results = assemble(info, timings, calibration, compiles, teacher_doc, latency, cpp, memory, score)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    from _report import markdown, plot, update_readme  # bench/ is on sys.path (the script's folder)

    md = markdown(results)
    (args.out / "results.md").write_text(md)
    plot(results, args.out / "results.png")
    if args.out.resolve() == BENCH.resolve():
        update_readme(BENCH / "README.md", md)
    log(f"wrote {args.out / 'results.json'}, results.md, results.png ({time.perf_counter() - T0:.0f} s in all)")
    return 0


def assemble(info, timings, calibration, compiles, teacher_doc, latency, cpp, memory, score) -> dict:
    main_meta = compiles[MAIN_BUDGET]
    t_metrics, s_metrics = main_meta["teacher_metrics"], main_meta["student_metrics"]
    est = {"teacher": teacher_doc["estimate"]["latency_us"], "student": s_metrics["latency_us"]}
    rows = {}

    def row(key, model, runtime, how, lat1, latd, estimate=None, memory_key=None):
        rows[key] = {"model": model, "runtime": runtime, "how": how,
                     "threads_1": lat1, "threads_default": latd, "estimate_us": estimate,
                     "peak_rss_bytes": memory.get(memory_key, {}).get("peak_rss_bytes") if memory_key else None}

    v1, vd = latency["1"]["variants"], latency["default"]["variants"]

    def pick(v, name):
        return {k: v[name][k] for k in ("median_us", "p99_us", "mean_us")}

    row("teacher_eager", "teacher", "torch eager", "TeamStep(obs, last, hidden, state), grad off",
        pick(v1, "teacher_eager"), pick(vd, "teacher_eager"), est["teacher"], "teacher_eager")
    row("teacher_compiled", "teacher", "kdcc TVM (uncompressed), Python", "HostPolicy.step",
        pick(v1, "teacher_compiled"), pick(vd, "teacher_compiled"), est["teacher"])
    row("student_eager", "student", "torch eager", "fused team graph (fx), grad off",
        pick(v1, "student_eager"), pick(vd, "student_eager"), est["student"], "student_eager")
    row("student_ort", "student", "ONNX Runtime, Python", "IO binding step (write inputs, run, carry hidden)",
        pick(v1, "student_ort"), pick(vd, "student_ort"), est["student"], "student_ort")
    row("student_ort_raw", "student", "ONNX Runtime, Python", "run_with_iobinding alone",
        pick(v1, "student_ort_raw"), pick(vd, "student_ort_raw"), est["student"])
    row("compiled", "student", "kdcc TVM, Python", "HostPolicy.step (as kdcc eval BUNDLE)",
        pick(v1, "compiled"), pick(vd, "compiled"), est["student"], "compiled")
    row("compiled_raw", "student", "kdcc TVM, Python", "VM main(*preallocated) alone",
        pick(v1, "compiled_raw"), pick(vd, "compiled_raw"), est["student"])
    row("compiled_cpp", "student", "kdcc TVM, C++", "kdcc_policy_step (examples/firmware --bench)",
        {k: cpp["1"][k] for k in ("median_us", "p99_us", "mean_us")},
        {k: cpp["default"][k] for k in ("median_us", "p99_us", "mean_us")}, est["student"], "cpp_firmware")
    for r in rows.values():
        m = r["threads_1"]["median_us"]
        r["estimate_over_measured"] = r["estimate_us"] / m if r["estimate_us"] else None
        r["speedup_vs_teacher_eager"] = rows["teacher_eager"]["threads_1"]["median_us"] / m
    ort1, ortd = rows["student_ort"], rows["student_ort_raw"]
    ratios = {
        "python_step_vs_ort_step": {t: rows["compiled"][t]["median_us"] / ort1[t]["median_us"]
                                    for t in ("threads_1", "threads_default")},
        "python_raw_vs_ort_raw": {t: rows["compiled_raw"][t]["median_us"] / ortd[t]["median_us"]
                                  for t in ("threads_1", "threads_default")},
        "cpp_vs_ort_raw": {t: rows["compiled_cpp"][t]["median_us"] / ortd[t]["median_us"]
                           for t in ("threads_1", "threads_default")},
        "cpp_vs_ort_step": {t: rows["compiled_cpp"][t]["median_us"] / ort1[t]["median_us"]
                            for t in ("threads_1", "threads_default")},
        "teacher_eager_over_python_step": {t: rows["teacher_eager"][t]["median_us"] / rows["compiled"][t]["median_us"]
                                           for t in ("threads_1", "threads_default")},
        "teacher_eager_over_cpp": {t: rows["teacher_eager"][t]["median_us"] / rows["compiled_cpp"][t]["median_us"]
                                   for t in ("threads_1", "threads_default")},
    }
    models = {
        "teacher": {"flops": t_metrics["flops"], "params": t_metrics["params"], "param_bytes": t_metrics["param_bytes"],
                    "estimate_us": est["teacher"], "normalised_score": 1.0, "mean_return": score["teacher_mean"]},
        "student": {"flops": s_metrics["flops"], "params": s_metrics["params"], "param_bytes": s_metrics["param_bytes"],
                    "estimate_us": est["student"], "normalised_score": score["compiled_student"]["normalised"],
                    "mean_return": score["compiled_student"]["mean"], "hidden_dim": main_meta["spec"]["agent"]["hidden_dim"],
                    "fidelity": main_meta["student_fidelity"]},
    }
    budgets = {}
    for b, c in compiles.items():
        lat_key = "student_eager" if b == MAIN_BUDGET else f"student_eager_{b}"
        ts = score["torch_students"][b]
        budgets[b] = {"flops": c["student_metrics"]["flops"], "params": c["student_metrics"]["params"],
                      "param_bytes": c["student_metrics"]["param_bytes"], "estimate_us": c["student_metrics"]["latency_us"],
                      "hidden_dim": c["spec"]["agent"]["hidden_dim"], "agent_kind": c["spec"]["agent"]["kind"],
                      "torch_eager_median_us": v1[lat_key]["median_us"], "normalised_score": ts["normalised"],
                      "mean_return": ts["mean"], "paired_se": ts["paired_se"], "episodes": ts["episodes"],
                      "compile_wall_s": c["wall_s"],
                      "built": c["build"], "passes_wall_s": c["passes_wall_s"],
                      "tvm_build_s": (c.get("build_seconds") or {}).get("cpu")}
    if budgets[MAIN_BUDGET]["flops"] == models["student"]["flops"]:
        budgets[MAIN_BUDGET]["compiled_python_median_us"] = rows["compiled"]["threads_1"]["median_us"]
        budgets[MAIN_BUDGET]["compiled_cpp_median_us"] = rows["compiled_cpp"]["threads_1"]["median_us"]
    est_ratio = {k: rows[k]["estimate_over_measured"] for k in ("compiled", "compiled_raw", "compiled_cpp", "teacher_compiled")}
    goals = {
        "compiled_le_half_ort_python": {
            "holds": ratios["python_step_vs_ort_step"]["threads_1"] <= 0.5,
            "value": ratios["python_step_vs_ort_step"]["threads_1"],
            "also_raw_calls": ratios["python_raw_vs_ort_raw"]["threads_1"],
            "what": "HostPolicy.step / ORT IO-binding step, 1 thread, median (raw calls: main() / run_with_iobinding)"},
        "compiled_le_half_ort_cpp": {
            "holds": ratios["cpp_vs_ort_raw"]["threads_1"] <= 0.5, "value": ratios["cpp_vs_ort_raw"]["threads_1"],
            "what": "kdcc_policy_step (C++) / ORT run_with_iobinding alone (ORT's fastest call; no ORT C++ build here), 1 thread"},
        "ge_10x_faster_than_teacher_eager": {
            "holds": min(ratios["teacher_eager_over_python_step"]["threads_1"],
                         ratios["teacher_eager_over_cpp"]["threads_1"]) >= 10,
            "value": {"python": ratios["teacher_eager_over_python_step"]["threads_1"],
                      "cpp": ratios["teacher_eager_over_cpp"]["threads_1"]},
            "what": "teacher torch eager median / compiled student median, 1 thread"},
        "estimate_within_1_5x": {
            "holds": all(1 / 1.5 <= est_ratio[k] <= 1.5 for k in ("compiled_raw", "compiled_cpp")),
            "value": est_ratio,
            "what": "cost-model estimate on the calibrated bench/host.toml / measured median, 1 thread; the "
                    "estimate models a compiled call with inputs in place (calibrate's probes), so the raw "
                    "call and the C++ step are what it must match"},
    }
    return {"machine": info, "timings": timings, "calibration": calibration, "rows": rows, "ratios": ratios,
            "models": models, "budgets": budgets, "memory": memory, "scores": score, "goals": goals,
            "latency_raw": latency, "cpp_raw": cpp, "agreement": latency["1"]["agreement"],
            "calls": latency["1"]["calls"], "rounds": latency["1"]["rounds"],
            "processes": latency["1"]["processes"], "cpp_runs": len(cpp["1"]["runs"]),
            "cpp_calls_per_run": cpp["1"]["calls"] // len(cpp["1"]["runs"])}


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())
