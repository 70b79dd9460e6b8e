"""Numeric agreement of what is shipped: torch vs ONNX Runtime vs the TVM host library.

A compile fails unless all three agree on a probe episode: a few sequential team steps,
each executor carrying its own hidden state and last actions, as a robot would. Greedy
actions must be equal; Q, new hidden state and Q_tot within `atol + rtol·max|ref|`
(1e-5 + 1e-6·max|ref|). The relative part is a few float32 ulps: Q_tot of a trained
team is tens, where one ulp is already ~4e-6, and fused kernels reassociate sums; a
wrong lowering is off by far more.
A disagreement raises KdccError naming the executor, the output and the step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.ir.spec import MarlSpec
from kdcc.ir.team import team_example_inputs
from kdcc.targets.tvm.lowering import INPUT_NAMES, OUTPUT_NAMES

__all__ = ["ATOL", "probe_episode", "verify_team_step", "verify_step"]

ATOL = 1e-5
RTOL = 1e-6


def probe_episode(spec: MarlSpec, steps: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(obs, state) per step; the first step has no last actions and a zero hidden state."""
    out = []
    for k in range(steps):
        obs, _, _, state = team_example_inputs(spec, seed + k)
        out.append((obs.numpy(), state.numpy()))
    return out


def _torch_step(module: nn.Module):
    def step(obs, last_actions, hidden, state):
        with torch.no_grad():
            outs = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (obs, last_actions, hidden, state)))
        return tuple(o.numpy() for o in outs)
    return step


def _ort_step(onnx_model: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    # the exporter drops inputs a graph does not read (a feed-forward student ignores `hidden`)
    taken = {i.name for i in session.get_inputs()}

    def step(obs, last_actions, hidden, state):
        feeds = dict(zip(INPUT_NAMES, (obs, last_actions, hidden, state)))
        return tuple(session.run(list(OUTPUT_NAMES), {k: v for k, v in feeds.items() if k in taken}))
    return step


def _tvm_step(host_library: Path, spec: MarlSpec):
    from kdcc.targets.tvm.runtime import HostPolicy

    policy = HostPolicy(host_library, spec)

    def step(*inputs):
        return tuple(np.array(o) for o in policy.call(*inputs))
    return step


def _run(step, spec: MarlSpec, episode) -> list[tuple[np.ndarray, ...]]:
    n = spec.n_agents
    last = np.full(n, -1, dtype=np.int64)
    hidden = np.zeros((n, spec.agent.hidden_dim), dtype=np.float32)
    results = []
    for obs, state in episode:
        outs = step(obs, last, hidden, state)
        results.append(outs)
        last, hidden = outs[0].astype(np.int64), outs[2].astype(np.float32)
    return results


def verify_team_step(module: nn.Module, spec: MarlSpec, onnx_model: bytes, host_library: str | Path,
                     *, steps: int = 4, seed: int = 0, atol: float = ATOL) -> dict:
    """Run the probe episode on all three executors; returns the worst differences seen."""
    episode = probe_episode(spec, steps, seed)
    reference = _run(_torch_step(module.eval()), spec, episode)
    worst: dict[str, dict[str, float]] = {}
    for name, step in (("onnxruntime", _ort_step(onnx_model)), ("tvm_host", _tvm_step(Path(host_library), spec))):
        got = _run(step, spec, episode)
        worst[name] = dict.fromkeys(OUTPUT_NAMES[1:], 0.0)
        for k, (ref_outs, outs) in enumerate(zip(reference, got)):
            for output, ref, out in zip(OUTPUT_NAMES, ref_outs, outs):
                if ref.shape != out.shape:
                    raise KdccError(f"verify: {name} output '{output}' has shape {out.shape}, torch {ref.shape}")
                if output == "actions":
                    if not np.array_equal(ref.astype(np.int64), out.astype(np.int64)):
                        raise KdccError(f"verify: {name} output 'actions' differs from torch at step {k}: "
                                        f"{out.tolist()} vs {ref.tolist()}")
                    continue
                diff = float(np.max(np.abs(ref.astype(np.float64) - out.astype(np.float64))))
                tol = atol + RTOL * float(np.max(np.abs(ref))) if ref.size else atol
                if not diff <= tol:
                    raise KdccError(f"verify: {name} output '{output}' differs from torch at step {k}: "
                                    f"max |diff| = {diff:.3g} > {tol:.3g} ({atol:g} + {RTOL:g}·max|torch|)")
                worst[name][output] = max(worst[name][output], diff)
    return {"steps": steps, "seed": seed, "atol": atol, "rtol": RTOL, "max_abs_diff": worst}


def verify_step(module: nn.Module, sig, onnx_model: bytes, host_library: str | Path, inputs: list[tuple],
                *, atol: float = ATOL) -> dict:
    """Any step (an agent step, the team monitor) on torch, ONNX Runtime and the host library, on each
    input tuple: integer outputs (greedy actions) equal, the rest within atol + rtol·max|torch|."""
    import onnxruntime as ort

    from kdcc.targets.tvm.runtime import HostStep

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}
    host = HostStep(host_library, sig.example_inputs)
    worst = {name: dict.fromkeys(sig.output_names, 0.0) for name in ("onnxruntime", "tvm_host")}
    for k, args in enumerate(inputs):
        with torch.no_grad():
            ref = [o.numpy() for o in module(*args)]
        arrays = [a.numpy() for a in args]
        runs = {"onnxruntime": session.run(list(sig.output_names),
                                           {n: a for n, a in zip(sig.input_names, arrays) if n in taken}),
                "tvm_host": host(*arrays)}
        for name, outs in runs.items():
            for output, r, o in zip(sig.output_names, ref, outs):
                o = np.asarray(o)
                if r.dtype.kind in "iu":
                    if not np.array_equal(r, o.astype(r.dtype)):
                        raise KdccError(f"verify {sig.what}: {name} output '{output}' differs from torch at "
                                        f"input {k}: {o.tolist()} vs {r.tolist()}")
                    continue
                diff = float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64)))) if r.size else 0.0
                tol = atol + RTOL * float(np.max(np.abs(r))) if r.size else atol
                if not diff <= tol:
                    raise KdccError(f"verify {sig.what}: {name} output '{output}' differs from torch at input {k}: "
                                    f"max |diff| = {diff:.3g} > {tol:.3g}")
                worst[name][output] = max(worst[name][output], diff)
    return {"inputs": len(inputs), "atol": atol, "rtol": RTOL, "max_abs_diff": worst}
