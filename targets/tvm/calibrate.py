"""`kdcc calibrate`: measure this machine with compiled probe graphs and write a host profile.

Each probe is a small torch module compiled exactly as kdcc compiles students
(Relax default pipeline, compiled VM, host CPU named) and called the way the
bundle calls it (fetched `main`, preallocated inputs, one thread). From their
median times:

  call_overhead_us    a graph with a team step's signature (4 tensors in, 4 out) and one trivial
                      kernel per output, less those 4 kernels: what every step pays
  kernel_overhead_us  (16 chained tiny Linears − a 1-op graph) / 16
  peak_gflops.fp32    effective throughput of policy-shaped GEMMs (3 rows × 256 → 768:
                      what TVM's default schedules reach on the GEMVs of a team step)
  mem_bandwidth_gbs   a 2 MB elementwise pass (read + write), called repeatedly: the bandwidth a
                      control loop sees, whose weights (≤ 2 MB even for a 256-wide teacher)
                      stay hot in cache between steps

The numbers replace those of the profile given (the shipped `host` by default)
and are written, with a header saying when and how, to a new TOML file.

On a board (`remote`: `--rpc-tracker HOST:PORT --rpc-key KEY` or `--rpc HOST:PORT`, as `kdcc
measure`): the probes are built for the profile's first device (an orin profile's aarch64 CPU)
here, uploaded, and timed on the board by TVM's `time_evaluator`, one call per sample
(`rpc.Timer`, the timer `kdcc measure` uses, so the calibrated estimates compare with its figures).
"""

from __future__ import annotations

import datetime
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes, check_writable
from kdcc.targets.profile import load_profile

__all__ = ["calibrate", "PROBES", "time_module", "median_call_us"]


class _One(nn.Module):
    def forward(self, x):
        return x + 1.0


class _Chain(nn.Module):
    def __init__(self, k: int = 16):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(k))

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


class _Gemv(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 768)

    def forward(self, x):
        return self.fc(x)


class _Stream(nn.Module):
    def forward(self, x):
        return x * 2.0


class _TeamCall(nn.Module):
    """A team step's signature (4 tensors in, 4 out) with one trivial kernel per output: what the
    VM pays to pass a step's arguments and return its results, beyond the kernels themselves."""

    def forward(self, obs, last_actions, hidden, state):
        return last_actions + 1, obs + 1.0, hidden + 1.0, state[:1] + 1.0


def _team_inputs():
    return (torch.randn(3, 18), torch.zeros(3, dtype=torch.int64), torch.randn(3, 32), torch.randn(54))


PROBES = {  # name -> (module factory, example inputs, FLOPs, bytes)
    "one": (_One, lambda: (torch.randn(4),), 4, 32),
    "team_call": (_TeamCall, _team_inputs, 0, 0),
    "chain16": (_Chain, lambda: (torch.randn(1, 8),), 16 * 2 * 8 * 8, 16 * 8 * 8 * 4),
    "gemv": (_Gemv, lambda: (torch.randn(3, 256),), 2 * 3 * 256 * 768, 4 * (256 * 768 + 768)),
    "stream": (_Stream, lambda: (torch.randn(512 * 1024),), 512 * 1024, 2 * 2 * 1024 * 1024),
}


def time_module(module: nn.Module, inputs: tuple[torch.Tensor, ...], device, profile, workdir: Path,
                calls: int, timer=None) -> float:
    """Median µs per call of `module` compiled for `device` and called like the bundle calls it
    (`timer`: an `rpc.Timer`, to time it there instead)."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    from kdcc.targets.tvm.build import build_library

    module = module.eval()
    with torch.no_grad():
        mod = from_exported_program(torch.export.export(module, inputs), keep_params_as_input=False)
    # one file name per probe: dlopen caches by path, so a reused name would load the old library
    lib = build_library(mod, device, profile, workdir / f"{type(module).__name__}.so", workdir / ".work")
    if timer is not None:
        return float(np.median(timer.sample(lib.path, "cpu", [x.numpy() for x in inputs], calls)) * 1e6)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib.path)), tvm.cpu())
    return median_call_us(vm["main"], [tvm.runtime.tensor(x.numpy()) for x in inputs], calls)


def median_call_us(main, args, calls: int) -> float:
    """Median µs of `main(*args)` after a warm-up of a tenth as many calls (at least 10)."""
    for _ in range(max(10, calls // 10)):
        main(*args)
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        main(*args)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e6)


def calibrate(base: str, out: str | Path, calls: int = 2000, workdir: str | Path | None = None,
              remote=None) -> dict[str, float]:
    """Measure (here, or on the board of `remote`, an `rpc.Remote`), then write `out`: the base profile's
    TOML with the measured numbers substituted."""
    if calls < 1:
        raise KdccError(f"--calls must be positive, got {calls}")
    check_writable(out)
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    profile = load_profile(base)
    device = profile.device()
    if device.kind != "cpu" or (device.cross_triple and remote is None):
        built_for = f" for {device.cross_triple}" if device.cross_triple else ""
        raise KdccError(f"--target {base}: calibrate measures this machine, so it needs a host CPU profile "
                        f"(this one's first device is {device.kind}{built_for}); calibrate a board's CPU on the "
                        "board with --rpc-tracker HOST:PORT --rpc-key KEY (or --rpc HOST:PORT)")
    timer = None
    if remote is not None:
        from kdcc.targets.tvm.rpc import open_timer

        timer = open_timer(remote)
    work = Path(workdir or Path(out).resolve().parent / ".kdcc-calibrate")
    work.mkdir(parents=True, exist_ok=True)
    try:
        torch.manual_seed(0)
        us = {name: time_module(factory(), make_inputs(), device, profile, work, calls if name != "stream" else 200,
                                timer) for name, (factory, make_inputs, _, _) in PROBES.items()}
        one = us["one"]  # a 1-in, 1-out, 1-kernel call: the baseline the single-tensor probes sit on
        chain_kernel = max((us["chain16"] - one) / 16, 0.01)
        measured = {
            "call_overhead_us": round(max(us["team_call"] - 4 * chain_kernel, 0.01), 3),
            "kernel_overhead_us": round(chain_kernel, 3),
            "peak_gflops_fp32": round(PROBES["gemv"][2] / max(us["gemv"] - one, 1e-3) / 1e3, 2),
            "mem_bandwidth_gbs": round(PROBES["stream"][3] / max(us["stream"] - one, 1e-3) / 1e3, 2),
        }
        # The kernels of a real team step (fused GEMM+epilogue, gathers, argmax) cost more to dispatch
        # than a chain of tiny Linears: fit the per-kernel overhead on a reference step (GRU-16 student).
        us["reference_team_step"], kernel = _fit_kernel_overhead(device, profile, measured, work, calls, timer)
        measured["kernel_overhead_us"] = round(kernel, 3)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    text = Path(profile.source).read_text() if Path(profile.source).is_file() else _shipped_text(base)
    text = _substitute(text, measured)
    stamp = datetime.date.today().isoformat()
    where = f" through {timer.how}" if timer is not None else ""
    header = (f"# Calibrated by `kdcc calibrate --target {base}`{where} on {stamp}: medians over {calls} calls of "
              f"compiled probe graphs\n# (raw µs: {', '.join(f'{k} {v:.3f}' for k, v in us.items())}).\n")
    atomic_write_bytes(Path(out), (header + text).encode())
    return {**measured, **{f"probe_us.{k}": round(v, 3) for k, v in us.items()}}


def _reference_step():
    """A GRU-16 student's fused team step (static mixer): the shape of what kdcc compiles."""
    from kdcc.ir.spec import AgentSpec, MarlSpec, MixerSpec
    from kdcc.ir.team import TeamStep, team_example_inputs
    from kdcc.marl.qmix import build_agent, build_mixer

    spec = MarlSpec(n_agents=3, obs_dim=18, state_dim=54, n_actions=5, agent=AgentSpec("rnn", 16),
                    mixer=MixerSpec("static", 8))
    torch.manual_seed(0)
    return spec, TeamStep(spec, build_agent(spec), build_mixer(spec)).eval(), team_example_inputs(spec)


def _fit_kernel_overhead(device, profile, measured: dict, work: Path, calls: int, timer=None) -> tuple[float, float]:
    """(measured µs of the reference step, per-kernel overhead that makes the model match it)."""
    import dataclasses

    from kdcc.ir.printer import team_ops
    from kdcc.ir.program import from_modules
    from kdcc.targets.cost_model import estimate
    from kdcc.targets.tvm.lowering import decompose_recurrent

    spec, team, inputs = _reference_step()
    t = time_module(decompose_recurrent(team), inputs, device, profile, work, calls, timer)
    base = dataclasses.replace(device, call_overhead_us=measured["call_overhead_us"], kernel_overhead_us=0.0,
                               mem_bandwidth_gbs=measured["mem_bandwidth_gbs"],
                               peak_gflops={**device.peak_gflops, "fp32": measured["peak_gflops_fp32"]})
    est = estimate(team_ops(from_modules(spec, team.agent, team.mixer)), base, runtime="vm")  # the VM is timed
    return t, max((t - est.total.latency_us) / max(est.kernels, 1), 0.01)


def _shipped_text(name: str) -> str:
    from importlib import resources

    return (resources.files("kdcc.targets") / "profiles" / f"{name}.toml").read_text()


def _substitute(text: str, m: dict[str, float]) -> str:
    """Replace the first device's numbers in TOML text, keeping its comments and layout."""
    rules = {
        r"^call_overhead_us\s*=.*$": f"call_overhead_us = {m['call_overhead_us']}  # calibrated",
        r"^kernel_overhead_us\s*=.*$": f"kernel_overhead_us = {m['kernel_overhead_us']}  # calibrated",
        r"^mem_bandwidth_gbs\s*=.*$": f"mem_bandwidth_gbs = {m['mem_bandwidth_gbs']}  # calibrated",
        r"^(peak_gflops\s*=\s*\{\s*fp32\s*=\s*)[0-9.]+": rf"\g<1>{m['peak_gflops_fp32']}",
    }
    for pattern, repl in rules.items():
        text = re.sub(pattern, repl, text, count=1, flags=re.MULTILINE)
    return text
