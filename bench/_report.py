"""bench/results.md and bench/results.png from the dict bench/run.py writes to results.json."""

from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _us(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _x(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}×"


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


# row key -> the ORT row it is compared with (the same kind of call)
ORT_PEER = {"student_eager": "student_ort", "student_ort": "student_ort", "compiled": "student_ort",
            "student_ort_raw": "student_ort_raw", "compiled_raw": "student_ort_raw", "compiled_cpp": "student_ort_raw"}
ORDER = ["teacher_eager", "teacher_compiled", "student_eager", "student_ort", "student_ort_raw", "compiled",
         "compiled_raw", "compiled_cpp"]


def markdown(r: dict) -> str:
    m, rows, g = r["machine"], r["rows"], r["goals"]
    load = f"{m['load_avg_start'][0]:.1f} at the start, {m['load_avg_end'][0]:.1f} at the end"
    modified = f" with uncommitted changes to {', '.join(m['git_modified'])}" if m.get("git_modified") else ""
    out = [
        "# kdcc benchmark: the example teacher and its compiled student",
        "",
        f"Measured {m['date']} by `make bench` (bench/run.py, {_mmss(r['timings']['total_s'])} in all) on "
        f"**{m['cpu_model']}, {m['cpus']} cores** ({', '.join(m.get('isa', []))}), git {m.get('git_head', '?')}{modified}. "
        f"The machine is shared with other work (load average {load} on {m['cpus']} cores), so absolute times "
        f"are inflated and p99s noisy; the variants were interleaved in rounds so that load hit them alike, "
        f"which keeps the ratios fair.",
        "",
        "## Latency per team step (3 agents + mixer: actions, Q, new hidden, Q_tot)",
        "",
        f"Timed calls per variant after warm-up: {r['calls']:,} with 1 thread ({r.get('processes', 1)} processes, "
        f"{r['rounds']} interleaved rounds in all, pooled), {r['latency_raw']['default']['calls']:,} with default "
        f"threads (1 process); C++: {r.get('cpp_runs', 0)} runs × "
        f"{r.get('cpp_calls_per_run', 0):,} calls, medians over the runs; µs. *1 thread*: torch.set_num_threads(1), ORT intra-op 1, TVM_NUM_THREADS=1; *default*: each "
        "runtime's own (2 threads here). A *step* writes numpy inputs, runs, carries the hidden state and returns "
        "actions and Q_tot (what a control loop does); a *raw* call only runs on inputs already in place. "
        "*vs ORT*: median over the ORT call of the same kind (step vs step; raw and C++ vs ORT's raw call). "
        "*est.*: the cost model on the calibrated `bench/host.toml` for that graph; it models a compiled call, "
        "so est./measured is given for the compiled rows only.",
        "",
        "| model | runtime | call | 1 thread median | p99 | default median | p99 | est. | est./measured | vs ORT | teacher eager ÷ this |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key in ORDER:
        row = rows[key]
        t1, td = row["threads_1"], row["threads_default"]
        peer = ORT_PEER.get(key)
        vs_ort = t1["median_us"] / rows[peer]["threads_1"]["median_us"] if peer else None
        compiled = key.startswith("compiled") or key == "teacher_compiled"
        bold = (lambda s: f"**{s}**") if key in ("compiled", "compiled_cpp") else (lambda s: s)
        out.append(f"| {row['model']} | {row['runtime']} | {row['how']} | {bold(_us(t1['median_us']))} | {_us(t1['p99_us'])} "
                   f"| {_us(td['median_us'])} | {_us(td['p99_us'])} | {_us(row['estimate_us'])} "
                   f"| {_x(row['estimate_over_measured']) if compiled else '—'} | {bold(_x(vs_ort)) if vs_ort else '—'} "
                   f"| {_x(row['speedup_vs_teacher_eager'], 1)} |")
    ag = r["agreement"]
    dq = max(v["max_abs_dq_tot"] for v in ag.values())
    out += ["", f"All student runtimes give the same actions on 100 steps from reset "
            f"({'yes' if all(v['actions_equal'] for v in ag.values()) else 'NO'}; max |ΔQ_tot| {dq:.1e}). "
            f"The teacher compiled uncompressed by the same TVM backend (bench/_teacher_tvm.py) is a second "
            f"point for the cost model. Calibration (`kdcc calibrate`): call overhead "
            f"{r['calibration'].get('call_overhead_us', 0):.3f} µs, kernel overhead "
            f"{r['calibration'].get('kernel_overhead_us', 0):.3f} µs, {r['calibration']['peak_gflops_fp32']:.1f} GFLOP/s, "
            f"{r['calibration'].get('mem_bandwidth_gbs', 0):.1f} GB/s.", ""]
    v1 = r["latency_raw"]["1"]["variants"]
    if "compiled_raw_unpacked" in v1:
        step, raw, unpacked = (v1[k]["median_us"] for k in ("compiled", "compiled_raw", "compiled_raw_unpacked"))
        cpp_runs = r["cpp_raw"]["1"]["process_medians_us"]
        out += [f"Where HostPolicy.step's {step:.2f} µs go (1 thread, medians): the VM call {raw:.2f} µs; unpacking its "
                f"4-tensor result {unpacked - raw:.2f} µs more; numpy views of the outputs, input writes and the "
                f"hidden-state copy the remaining {step - unpacked:.2f} µs. The C++ API (copy the 3 inputs in, run, copy "
                f"actions and Q_tot out, keep the hidden tensor) takes {rows['compiled_cpp']['threads_1']['median_us']:.2f} µs; "
                f"its runs' medians ranged {min(cpp_runs):.2f}–{max(cpp_runs):.2f} µs"
                + (": on this KVM guest a process can run in a fast or a ~1.5× slower mode for its whole life, even "
                   "on an idle machine, hence several runs" if max(cpp_runs) > 1.2 * min(cpp_runs) else
                   " (on this KVM guest a process can also land in a ~1.5× slower mode for its whole life, hence "
                   "several runs)")
                + ". No ONNX Runtime C/C++ build is installed here (the pip wheel has no headers), so the C++ step "
                "is compared with ORT's raw call from Python, which adds only ORT's pybind layer to its C++ run.", ""]

    t, s = r["models"]["teacher"], r["models"]["student"]
    sc = r["scores"]
    out += ["## Models", "",
            f"Normalised score (R − R_random)/(R_teacher − R_random) over {sc['episodes']} MPE episodes "
            f"(seeds 0–{sc['episodes'] - 1}; random policy {sc['random_mean']:.2f}, teacher {sc['teacher_mean']:.2f}); "
            "the student's is the compiled bundle's (`kdcc.api.evaluate`), ± one paired standard error "
            "(per-episode return minus the teacher's on the same seed).", "",
            "| | FLOPs per step | parameters | parameter bytes | mean return | normalised score |",
            "|---|--:|--:|--:|--:|--:|",
            f"| teacher (GRU 256, hypernet mixer) | {t['flops']:,} | {t['params']:,} | {t['param_bytes']:,} | {t['mean_return']:.2f} | 1 |",
            f"| student ({MAIN(r)}, GRU {s['hidden_dim']}) | {s['flops']:,} | {s['params']:,} | {s['param_bytes']:,} | "
            f"{s['mean_return']:.2f} | **{s['normalised_score']:.3f}** ± {sc['compiled_student']['paired_se']:.3f} |",
            f"| teacher ÷ student | {t['flops'] / s['flops']:.1f}× | {t['params'] / s['params']:.1f}× | "
            f"{t['param_bytes'] / s['param_bytes']:.1f}× | | |", ""]

    mem = r["memory"]
    names = {"python_numpy": "Python + numpy only (floor of every Python row)", "teacher_eager": "teacher, torch eager",
             "student_eager": "student, torch eager", "student_ort": "student, ONNX Runtime",
             "compiled": "student, kdcc TVM from Python (HostPolicy)", "cpp_firmware": "student, kdcc TVM from C++ (examples/firmware)"}
    out += ["## Peak memory of a fresh process that loads one and steps it 1,000 times", "",
            "VmHWM (peak resident set) of the process, 1 thread. `import tvm` (apache-tvm's Python package: the "
            "compiler, LLVM, and it imports torch when installed) is what the Python row of the compiled "
            "student pays; firmware links only libtvm_runtime.", "",
            "| process | peak RSS | runtimes loaded |", "|---|--:|---|"]
    for k, label in names.items():
        out.append(f"| {label} | {mem[k]['peak_rss_bytes'] / 2**20:,.1f} MiB | {', '.join(mem[k].get('modules', [])) or '—'} |")
    out += [""]

    b = r["budgets"]
    out += ["## Budgets (Pareto)", "",
            "`kdcc compile --budget-flops B --target bench/host.toml`; the 30x (default) compile builds the bundle, "
            "the others run the passes only (`--no-build`). Score of each torch student over the episodes shown, "
            "same seeds; ± one paired standard error (per-episode return minus the teacher's on the same seed).", "",
            "| budget | agent | FLOPs | parameter bytes | est. µs | torch eager µs (1 thr) | compiled µs (Python / C++) | normalised score | episodes | compile wall |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name in sorted(b, key=lambda k: float(k.rstrip("x"))):
        x = b[name]
        comp = (f"{_us(x['compiled_python_median_us'])} / {_us(x['compiled_cpp_median_us'])}"
                if "compiled_python_median_us" in x else "—")
        out.append(f"| {name} | {x['agent_kind'].upper()} {x['hidden_dim']} | {x['flops']:,} | {x['param_bytes']:,} | "
                   f"{_us(x['estimate_us'])} | {_us(x['torch_eager_median_us'])} | {comp} | {x['normalised_score']:.3f} ± {x['paired_se']:.3f} | "
                   f"{x['episodes']} | {x['compile_wall_s']:.0f} s{'' if x['built'] else ' (no build)'} |")
    tm = r["timings"]
    main = b.get(MAIN(r), {})
    out += ["", "## Times", "",
            f"`kdcc compile` (fresh process, default 30x budget, host bundle): **{main.get('compile_wall_s', 0):.0f} s** "
            f"(passes {main.get('passes_wall_s', 0):.0f} s, TVM build {main.get('tvm_build_s') or 0:.1f} s); "
            f"`kdcc calibrate`: {tm.get('calibrate_s', 0):.0f} s; teacher through TVM: {tm.get('teacher_tvm_s', 0):.0f} s; "
            f"firmware example (CMake): {tm.get('firmware_build_s', 0):.0f} s; latency runs "
            f"{tm.get('latency_1_s', 0) + tm.get('latency_default_s', 0):.0f} s; whole `make bench`: "
            f"**{_mmss(tm['total_s'])}**.", ""]

    def mark(goal):
        return "holds" if goal["holds"] else "**does not hold**"

    ge = g["ge_10x_faster_than_teacher_eager"]["value"]
    est = g["estimate_within_1_5x"]["value"]
    out += ["## Goals (issue 8)", "",
            f"- Compiled step ≤ 0.5× ONNX Runtime, 1 thread, from Python: {mark(g['compiled_le_half_ort_python'])} — "
            f"{g['compiled_le_half_ort_python']['value']:.2f}× (HostPolicy.step vs ORT step); raw calls "
            f"{g['compiled_le_half_ort_python']['also_raw_calls']:.2f}×.",
            f"- … from C++: {mark(g['compiled_le_half_ort_cpp'])} — {g['compiled_le_half_ort_cpp']['value']:.2f}× "
            "(kdcc_policy_step vs ORT's raw run_with_iobinding from Python, ORT's fastest call measured here).",
            f"- ≥ 10× faster than the teacher in torch eager: {mark(g['ge_10x_faster_than_teacher_eager'])} — "
            f"{ge['python']:.1f}× from Python, {ge['cpp']:.1f}× from C++.",
            f"- Cost-model estimate within 1.5× of measured (calibrated host): {mark(g['estimate_within_1_5x'])} — "
            f"estimate/measured {est['compiled_raw']:.2f} (raw call), {est['compiled_cpp']:.2f} (C++), "
            f"{est['compiled']:.2f} (HostPolicy.step), {est['teacher_compiled']:.2f} (teacher through TVM).", ""]
    return "\n".join(out)


def MAIN(r: dict) -> str:  # the budget of the built bundle
    return next(k for k, v in r["budgets"].items() if v["built"])


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, s = r["rows"], r["models"]["student"]["normalised_score"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    pts = [("teacher, torch eager", "teacher_eager", 1.0, "tab:red"),
           ("teacher, kdcc TVM (uncompressed)", "teacher_compiled", 1.0, "tab:orange"),
           ("student, torch eager", "student_eager", s, "tab:gray"),
           ("student, ONNX Runtime (step)", "student_ort", s, "tab:purple"),
           ("student, kdcc TVM, Python (step)", "compiled", s, "tab:blue"),
           ("student, kdcc TVM, C++", "compiled_cpp", s, "tab:green")]
    for label, key, score, color in pts:
        x = rows[key]["threads_1"]["median_us"]
        a.scatter([x], [score], color=color, s=60, label=f"{label}: {x:,.1f} µs", zorder=3)
        lo, hi = x, rows[key]["threads_1"]["p99_us"]
        a.plot([lo, hi], [score, score], color=color, lw=1, alpha=0.5)
    lowest = min(s, min(v["normalised_score"] for v in r["budgets"].values()))
    ylim = (min(0.9, lowest - 0.03), 1.03)
    a.set_ylim(*ylim)
    a.set_xscale("log")
    a.set_xlabel("latency per team step, µs (1 thread; dot: median, line to p99)")
    a.set_ylabel("normalised score (teacher = 1)")
    a.set_title("Latency vs score")
    a.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=7.5, loc="lower left")

    bud = r["budgets"]
    for name, v in bud.items():
        se = r["scores"]["torch_students"][name]["paired_se"]
        b.errorbar([v["flops"]], [v["normalised_score"]], yerr=[se], fmt="o", color="tab:blue", capsize=3,
                   label="students in torch (± 1 paired s.e. vs the teacher)" if name == MAIN(r) else None)
        b.annotate(f"{name}: {v['agent_kind']} {v['hidden_dim']}, est. {v['estimate_us']:.1f} µs,\n"
                   f"score {v['normalised_score']:.3f} ({v['episodes']} ep.)", (v["flops"], v["normalised_score"]),
                   textcoords="offset points", xytext=(6, -22), fontsize=7.5)
    t = r["models"]["teacher"]
    b.scatter([t["flops"]], [1.0], color="tab:red", s=60, label="teacher", zorder=3)
    b.annotate(f"teacher, est. {t['estimate_us']:.0f} µs", (t["flops"], 1.0), textcoords="offset points",
               xytext=(-70, 8), fontsize=7.5)
    front, best = [], -1.0  # non-dominated: no point with fewer FLOPs scores higher
    for f, sc in sorted([(v["flops"], v["normalised_score"]) for v in bud.values()] + [(t["flops"], 1.0)]):
        if sc > best:
            front.append((f, sc))
            best = sc
    b.plot(*zip(*front), "--", color="gray", lw=1, label="Pareto front (measured scores)")
    b.set_ylim(*ylim)
    b.set_xscale("log")
    b.set_xlabel("FLOPs per team step")
    b.set_ylabel("normalised score")
    b.set_title("Pareto of --budget-flops")
    b.grid(True, which="both", alpha=0.3)
    b.legend(fontsize=8, loc="lower right")
    m = r["machine"]
    fig.suptitle(f"kdcc bench, {m['date'][:10]}, {m['cpu_model']} ({m['cpus']} cores, load ~{m['load_avg_start'][0]:.1f})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def update_readme(path: Path, md: str) -> None:
    """Put the results (without their title) between the README's results markers."""
    body = md.split("\n", 2)[2] if md.startswith("# ") else md
    body = re.sub(r"^## ", "### ", body, flags=re.M)  # under the README's own "## Latest results"
    block = f"{START}\n{body.strip()}\n{END}"
    text = path.read_text() if path.is_file() else ""
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + block + "\n"
    path.write_text(text)
