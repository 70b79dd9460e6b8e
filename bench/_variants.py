"""The ways a team step runs, stepped from Python, for bench/run.py (one process per measurement).

    python bench/_variants.py latency CONFIG.json OUT.json   # every variant, interleaved, one thread setting
                                                             # (+ OUT.npz: every call's ns, for pooling)
    python bench/_variants.py memory CONFIG.json VARIANT     # load one variant, step it, print its peak RSS

Every variant is a *team step* with the same contract as the bundle's C API: numpy obs
[n, obs_dim], last actions [n] (int64, -1 = none) and state [state_dim] in; greedy actions
[n] and Q_tot out; the agents' hidden state carried inside from one step to the next.

  teacher_eager   the teacher's TeamStep in torch eager (grad off)
  student_eager   the compiled student's fused team graph (fx GraphModule) in torch eager
  student_ort     the bundle's student.onnx (onnxsim-simplified) in ONNX Runtime: ORT_ENABLE_ALL,
                  sequential, intra-op threads 1 (single) or 0 (ORT's default); IO binding of
                  preallocated OrtValues over numpy buffers, inputs written in place, new hidden
                  copied back into the bound hidden buffer
  compiled        the bundle's TVM library through HostPolicy.step, the class `kdcc eval BUNDLE` uses
  teacher_compiled  the teacher built by the same TVM backend, uncompressed (bench/_teacher_tvm.py)
  *_raw           the runtime call alone, inputs already in place (ORT: run_with_iobinding;
                  TVM: HostPolicy's fetched `main` on its preallocated tensors; compiled_raw_unpacked
                  also unpacks the 4 result tensors, to show where HostPolicy.step's time goes)

Thread settings are process-wide and TVM reads TVM_NUM_THREADS when it starts its pool, so
run.py starts one process per setting with the environment set (TVM_NUM_THREADS=1, or unset).
Imports are lazy per variant so that `memory` measures what that variant needs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

EPISODE = 25  # MPE simple_spread_v3's max_cycles: reset the hidden state this often (not timed)


class _Torch:
    def __init__(self, module, n: int, hidden: int, threads: str):
        import torch

        if threads == "1":
            torch.set_num_threads(1)
        torch.set_grad_enabled(False)
        self.torch, self.module = torch, module.eval()
        self.n, self.hidden_dim = n, hidden
        self.reset()

    def reset(self):
        self.hidden = self.torch.zeros(self.n, self.hidden_dim)

    def step(self, obs, last, state):
        t = self.torch
        actions, _, self.hidden, q_tot = self.module(t.from_numpy(obs), t.from_numpy(last), self.hidden,
                                                     t.from_numpy(state))
        return actions.numpy(), float(q_tot[0])


def teacher_eager(cfg, threads):
    from kdcc.inputs.teacher import load_teacher
    from kdcc.ir.team import TeamStep

    t = load_teacher(cfg["teacher"])
    return _Torch(TeamStep(t.spec, t.agent, t.mixer), t.spec.n_agents, t.spec.agent.hidden_dim, threads)


def _student(path, meta, threads):
    import torch

    spec = json.loads(Path(meta).read_text())["spec"]
    module = torch.load(path, weights_only=False)  # our own pickle, written by _kdcc_compile.py
    return _Torch(module, spec["n_agents"], spec["agent"]["hidden_dim"], threads)


class _Ort:
    def __init__(self, path: str, spec: dict, threads: str):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = 1 if threads == "1" else 0
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        n, h = spec["n_agents"], spec["agent"]["hidden_dim"]
        self.buf = {"obs": np.zeros((n, spec["obs_dim"]), np.float32), "last_actions": np.full(n, -1, np.int64),
                    "hidden": np.zeros((n, h), np.float32), "state": np.zeros(spec["state_dim"], np.float32),
                    "actions": np.zeros(n, np.int64), "q": np.zeros((n, spec["n_actions"]), np.float32),
                    "new_hidden": np.zeros((n, h), np.float32), "q_tot": np.zeros(1, np.float32)}
        binding = self.sess.io_binding()
        self._values = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self.buf.items()}  # share memory
        for i in self.sess.get_inputs():
            binding.bind_ortvalue_input(i.name, self._values[i.name])
        for o in self.sess.get_outputs():
            binding.bind_ortvalue_output(o.name, self._values[o.name])
        self.binding = binding
        # The public run_with_iobinding(binding, RunOptions()) costs ~30 µs more here (it probes the
        # run options for a WebGPU graph id through a C++ exception); without run options it is
        # ~1 µs over the binding's own C++ method, which is what this calls: ORT at its fastest.
        raw = getattr(getattr(self.sess, "_sess", None), "run_with_iobinding", None)
        inner = getattr(binding, "_iobinding", None)
        self.run = (lambda: raw(inner, None)) if raw and inner is not None else (lambda: self.sess.run_with_iobinding(binding))
        self.public_run = lambda: self.sess.run_with_iobinding(binding)

    def reset(self):
        self.buf["hidden"][...] = 0.0

    def step(self, obs, last, state):
        b = self.buf
        b["obs"][...], b["last_actions"][...], b["state"][...] = obs, last, state
        self.run()
        b["hidden"][...] = b["new_hidden"]
        return b["actions"].copy(), float(b["q_tot"][0])


def student_ort(cfg, threads):
    return _Ort(cfg["onnx"], json.loads(Path(cfg["meta"]).read_text())["spec"], threads)


def compiled(cfg, threads):
    from kdcc.ir.spec import MarlSpec
    from kdcc.targets.tvm.runtime import HostPolicy  # what open_bundle returns, without importing torch

    doc = json.loads((Path(cfg["bundle"]) / "profile.json").read_text())
    lib = next(l for l in doc["libraries"] if l["kind"] == "cpu" and l["arch"] == os.uname().machine)
    return HostPolicy(Path(cfg["bundle"]) / lib["path"], MarlSpec.from_dict(doc["spec"]))


def _inputs(spec: dict, count: int = 256, seed: int = 0):
    g = np.random.default_rng(seed)
    n = spec["n_agents"]
    return ([g.standard_normal((n, spec["obs_dim"]), dtype=np.float32) for _ in range(count)],
            [g.standard_normal(spec["state_dim"], dtype=np.float32) for _ in range(count)])


def _runner(step, reset, spec):
    """A closure that runs `calls` team steps and returns each one's ns (reset every EPISODE steps)."""
    obs, state = _inputs(spec)
    n = spec["n_agents"]
    pos = {"i": 0, "last": np.full(n, -1, np.int64)}
    clock = time.perf_counter_ns

    def run(calls: int) -> np.ndarray:
        out = np.empty(calls, np.int64)
        i, last = pos["i"], pos["last"]
        for k in range(calls):
            if i % EPISODE == 0:
                reset()
                last = np.full(n, -1, np.int64)
            o, s = obs[i % len(obs)], state[i % len(state)]
            t0 = clock()
            last, _ = step(o, last, s)
            out[k] = clock() - t0
            i += 1
        pos["i"], pos["last"] = i, last
        return out

    return run


def _raw_runner(call):
    clock = time.perf_counter_ns

    def run(calls: int) -> np.ndarray:
        out = np.empty(calls, np.int64)
        for k in range(calls):
            t0 = clock()
            call()
            out[k] = clock() - t0
        return out

    return run


def _agreement(students: dict, spec: dict, steps: int = 100) -> dict:
    """Actions and Q_tot of the student variants on the same inputs (they run the same graph)."""
    obs, state = _inputs(spec, steps, seed=1)
    traces = {}
    for name, v in students.items():
        v.reset()
        last, acts, qs = np.full(spec["n_agents"], -1, np.int64), [], []
        for o, s in zip(obs, state):
            last, q = v.step(o, last, s)
            last = np.asarray(last).copy()
            acts.append(last)
            qs.append(q)
        traces[name] = (np.array(acts), np.array(qs))
    ref_name = next(iter(traces))
    ref = traces[ref_name]
    return {name: {"reference": ref_name, "actions_equal": bool((a == ref[0]).all()),
                   "max_abs_dq_tot": float(np.abs(q - ref[1]).max())} for name, (a, q) in traces.items()}


def latency(cfg: dict, out: Path) -> None:
    threads = cfg["threads"]
    spec = json.loads(Path(cfg["meta"]).read_text())["spec"]
    variants = {"teacher_eager": teacher_eager(cfg, threads),
                "student_eager": _student(cfg["student"], cfg["meta"], threads),
                "student_ort": student_ort(cfg, threads),
                "compiled": compiled(cfg, threads)}
    if cfg.get("teacher_bundle"):
        variants["teacher_compiled"] = compiled({"bundle": cfg["teacher_bundle"]}, threads)
    agreement = _agreement({k: variants[k] for k in ("compiled", "student_ort", "student_eager")}, spec)
    if "teacher_compiled" in variants:
        agreement.update({f"teacher_{k}": v for k, v in _agreement(
            {k: variants[k] for k in ("teacher_compiled", "teacher_eager")}, spec).items()})
    runners = {name: _runner(v.step, v.reset, spec) for name, v in variants.items()}  # dims agree
    runners["student_ort_raw"] = _raw_runner(variants["student_ort"].run)
    runners["student_ort_public_api_raw"] = _raw_runner(variants["student_ort"].public_run)
    tvm = variants["compiled"]
    main, tensors = tvm._main, tvm._tensors
    runners["compiled_raw"] = _raw_runner(lambda: main(*tensors))

    def call_and_unpack():  # diagnostic: the raw call plus unpacking its (actions, q, hidden, q_tot) result
        actions, q, hidden, q_tot = main(*tensors)

    runners["compiled_raw_unpacked"] = _raw_runner(call_and_unpack)
    for name, (path, meta) in (cfg.get("extra_students", {}) if threads == "1" else {}).items():
        s = _student(path, meta, threads)
        runners[name] = _runner(s.step, s.reset, json.loads(Path(meta).read_text())["spec"])
    calls, rounds, warmup = cfg["calls"], cfg["rounds"], cfg["warmup"]
    per_round = -(-calls // rounds)
    times = {name: [] for name in runners}
    for run in runners.values():
        run(warmup)
    started = time.perf_counter()
    done = 0
    for _ in range(rounds):  # interleaved, so a burst of load on this shared machine hits every variant
        for name, run in runners.items():
            run(max(per_round // 10, 10))  # re-warm caches after the other variants ran
            times[name].append(run(per_round))
        done += 1
        if time.perf_counter() - started > cfg.get("max_wall_s", float("inf")):
            break  # a machine so busy that the run would not fit: every variant stops at the same round
    wall = time.perf_counter() - started
    result = {"threads": threads, "calls": per_round * done, "rounds": done, "warmup": warmup,
              "wall_s": wall, "agreement": agreement, "variants": {}}
    for name, chunks in times.items():
        us = np.concatenate(chunks) / 1e3
        result["variants"][name] = {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
                                    "mean_us": float(us.mean()), "min_us": float(us.min()),
                                    "round_medians_us": [float(np.median(c) / 1e3) for c in chunks]}
    out.write_text(json.dumps(result, indent=2) + "\n")
    np.savez_compressed(out.with_suffix(".npz"), **{k: np.concatenate(c).astype(np.int32) for k, c in times.items()})  # ns


def memory(cfg: dict, variant: str) -> None:
    threads = "1"
    spec = json.loads(Path(cfg["meta"]).read_text())["spec"]
    if variant == "teacher_eager":
        v = teacher_eager(cfg, threads)
    elif variant == "student_eager":
        v = _student(cfg["student"], cfg["meta"], threads)
    elif variant == "student_ort":
        v = student_ort(cfg, threads)
    elif variant == "compiled":
        v = compiled(cfg, threads)
    elif variant == "python_numpy":  # the floor every Python variant pays
        v = None
    else:
        raise SystemExit(f"unknown variant {variant}")
    if v is not None:
        _runner(v.step, v.reset, spec)(1000)
    print(json.dumps({"modules": sorted(m for m in ("torch", "tvm", "onnxruntime") if m in sys.modules),
                      "peak_rss_bytes": peak_rss_bytes()}))


def peak_rss_bytes() -> int:
    """VmHWM: the peak resident set of this process image. (wait4's ru_maxrss is no good here: Linux
    carries the parent's RSS high-water mark across fork and exec into the child's.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    cmd, config = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    if cmd == "latency":
        latency(config, Path(sys.argv[3]))
    elif cmd == "memory":
        memory(config, sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")
