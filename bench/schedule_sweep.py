"""Width sweep of a GRU team step: TVM's default CPU pipeline vs dlight's rules vs kdcc's schedule.

On demand, not a test:

    TVM_NUM_THREADS=1 .venv/bin/python bench/schedule_sweep.py [--widths 4 8 ...] [--out FILE]

The step is what a student or teacher agent does for a team of 3 agents, one call:
Linear(26→W)+relu, a GRUCell(W→W) spelled out in plain ops (TVM's torch frontend rejects
nn.GRUCell), Linear(W→5). For each width it builds the step three ways for this machine's
CPU (`{"kind": "llvm", "mcpu": <llvm_get_system_cpu()>}`, `exec_mode="compiled"`):

- `default`: `relax.get_default_pipeline(target)` (what kdcc's tvm_build used),
- `dlight`: the same plus dlight's CPU GEMV and Reduction rules after FuseTIR,
- `kdcc`: `kdcc.targets.tvm.schedules.cpu_pipeline(target)`,

checks each against torch (max |Δ|), and times it single-threaded from Python: `vm["main"]`
fetched once, inputs preallocated, warm-up, then 15 rounds of C calls, the three builds
interleaved round by round; the median over rounds of the mean µs per call is reported (and
the fastest round, less noisy on a busy machine). It also times one 3×256 → 768 Linear (the teacher's GRU input GEMM) alone.
Writes bench/schedule_sweep.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TVM_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

N_AGENTS, IN_DIM, N_ACTIONS = 3, 26, 5
WIDTHS = (4, 8, 16, 32, 44, 64, 128, 256)


class GruStep(nn.Module):
    """One team step of a GRU agent for all agents at once, in plain ops (PyTorch gate order r, z, n)."""

    def __init__(self, width: int, in_dim: int = IN_DIM, n_actions: int = N_ACTIONS):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, width)
        self.w_ih = nn.Parameter(torch.randn(3 * width, width) / width ** 0.5)
        self.w_hh = nn.Parameter(torch.randn(3 * width, width) / width ** 0.5)
        self.b_ih = nn.Parameter(torch.randn(3 * width) * 0.1)
        self.b_hh = nn.Parameter(torch.randn(3 * width) * 0.1)
        self.fc2 = nn.Linear(width, n_actions)

    def forward(self, x, h):
        x = torch.relu(self.fc1(x))
        gi = x @ self.w_ih.T + self.b_ih
        gh = h @ self.w_hh.T + self.b_hh
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h_new = n + z * (h - n)
        return self.fc2(h_new), h_new


class Linear(nn.Module):
    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc = nn.Linear(i, o)

    def forward(self, x):
        return self.fc(x)


def host_target():
    import tvm
    from tvm.target.codegen import llvm_get_system_cpu

    return tvm.target.Target({"kind": "llvm", "mcpu": str(llvm_get_system_cpu())})


def pipelines(target):
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu
    from tvm.s_tir import dlight as dl

    from kdcc.targets.tvm.schedules import cpu_pipeline

    @tvm.transform.module_pass(opt_level=0)
    def dlight_pipeline(mod, _ctx):
        with target:
            return tvm.transform.Sequential(
                cpu.library_dispatch_passes(target) + cpu.legalize_passes(target)
                + [dl.ApplyDefaultSchedule(dl.cpu.GEMV(), dl.cpu.Reduction())]
                + cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)

    return {"default": relax.get_default_pipeline(target), "dlight": dlight_pipeline,
            "kdcc": cpu_pipeline(target)}


def build(model: nn.Module, inputs, pipeline, target):
    """Build `model` with `pipeline`; (callable, its input tensors, max |Δ| vs torch, build seconds)."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    with torch.no_grad():
        mod = from_exported_program(torch.export.export(model.eval(), tuple(inputs)))
        ref = model(*inputs)
    ref = (ref,) if isinstance(ref, torch.Tensor) else ref
    t0 = time.perf_counter()
    exe = relax.build(mod, target, relax_pipeline=pipeline, exec_mode="compiled")
    build_s = time.perf_counter() - t0
    f = relax.VirtualMachine(exe, tvm.cpu())["main"]
    args = [tvm.runtime.tensor(x.numpy()) for x in inputs]
    out = f(*args)
    out = list(out) if isinstance(out, (list, tuple)) or type(out).__name__ == "Array" else [out]
    err = max(float(np.abs(np.from_dlpack(o) - r.numpy()).max()) for o, r in zip(out, ref))
    return f, args, err, build_s


def measure(model: nn.Module, inputs, pipes: dict, target, budget_s: float, rounds: int = 15) -> dict:
    """Build `model` with each pipeline, check it against torch, time them; µs per call.

    The pipelines are timed in interleaved rounds, so a load change on a busy machine hits
    them all alike.
    """
    built = {name: build(model, inputs, p, target) for name, p in pipes.items()}
    calls = {}
    for name, (f, args, _, _) in built.items():
        for _ in range(20):
            f(*args)
        t = time.perf_counter()
        for _ in range(5):
            f(*args)
        one = max((time.perf_counter() - t) / 5, 1e-7)
        calls[name] = max(20, min(5000, int(budget_s / rounds / one)))
    means = {name: [] for name in built}
    for _ in range(rounds):
        for name, (f, args, _, _) in built.items():
            n = calls[name]
            t = time.perf_counter()
            for _ in range(n):
                f(*args)
            means[name].append((time.perf_counter() - t) / n * 1e6)
    return {name: {"median_us": round(statistics.median(means[name]), 3), "min_us": round(min(means[name]), 3),
                   "calls": calls[name] * rounds, "max_abs_err": built[name][2], "build_s": round(built[name][3], 2)}
            for name in built}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument("--budget", type=float, default=0.6, help="seconds of timed calls per build")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("schedule_sweep.json"))
    args = ap.parse_args(argv)

    import tvm

    torch.manual_seed(0)
    target = host_target()
    pipes = pipelines(target)
    rows = []
    print(f"{'width':>6} " + " ".join(f"{k + ' µs':>14}" for k in pipes) + f" {'kdcc speedup':>13}")
    for w in args.widths:
        model = GruStep(w)
        inputs = [torch.randn(N_AGENTS, IN_DIM), torch.randn(N_AGENTS, w) * 0.5]
        res = measure(model, inputs, pipes, target, args.budget)
        rows.append({"width": w, **res})
        print(f"{w:>6} " + " ".join(f"{r['median_us']:>14.2f}" for r in res.values())
              + f" {res['default']['median_us'] / res['kdcc']['median_us']:>12.1f}×", flush=True)
    gemm_inputs = [torch.randn(N_AGENTS, 256)]
    gemm = measure(Linear(256, 768), gemm_inputs, pipes, target, args.budget)
    print("3×256→768 Linear: " + ", ".join(f"{k} {v['median_us']:.2f} µs" for k, v in gemm.items()))
    record = {
        "what": "GRU team step (3 agents: Linear(26→W)+relu, GRUCell(W→W) in plain ops, Linear(W→5)), "
                "median over 15 rounds of mean µs per call from Python, exec_mode=compiled",
        "machine": {"cpu": str(target.attrs.get("mcpu", "")), "platform": platform.platform(),
                    "python": sys.version.split()[0], "tvm": tvm.__version__,
                    "TVM_NUM_THREADS": os.environ.get("TVM_NUM_THREADS")},
        "date": time.strftime("%Y-%m-%d"),
        "sweep": rows,
        "gemm_3x256_768": gemm,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
