"""Verification of a reduced-precision step: close to the fp32 torch step, not equal to it.

An fp32 build must agree with torch to float32 rounding (`verify.py`); an fp16 or int8 build is
lossy by design, so it is checked like a lossy pass: on the calibration samples (inputs the step
sees on the dataset, each step fed the fp32 student's own hidden state), the host library and the
ONNX graph each give the fp32 torch step's greedy actions on at least `MIN_AGREEMENT` of the
samples, and their largest Q and hidden-state differences are recorded. The build fails below it:
a precision that changes that many decisions is a broken build, not a cheaper one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError

__all__ = ["MIN_AGREEMENT", "check_precision"]

MIN_AGREEMENT = 0.8  # a broken lowering agrees about as often as chance (1/5 for 5 actions)


def _ort(onnx_model: bytes, sig):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}
    return lambda *arrays: session.run(list(sig.output_names),
                                       {n: a for n, a in zip(sig.input_names, arrays) if n in taken})


def check_precision(module: nn.Module, sig, onnx_model: bytes, host_library: str | Path, samples: Sequence[tuple],
                    precision: str) -> dict:
    """Action agreement and worst differences of the host library and ONNX Runtime against fp32 torch."""
    from kdcc.targets.tvm.runtime import HostStep

    runs = {"onnxruntime": _ort(onnx_model, sig), "tvm_host": HostStep(host_library, sig.example_inputs)}
    agree = {name: [] for name in runs}
    worst = {name: dict.fromkeys(sig.output_names, 0.0) for name in runs}
    for arrays in samples:
        with torch.no_grad():
            ref = [o.numpy() for o in module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))]
        for name, run in runs.items():
            for output, r, o in zip(sig.output_names, ref, run(*arrays)):
                o = np.asarray(o)
                if r.dtype.kind in "iu":
                    agree[name].append(float(np.mean(r == o.astype(r.dtype))))
                elif r.size:
                    diff = float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64))))
                    worst[name][output] = max(worst[name][output], diff)
    record = {"precision": precision, "inputs": len(samples), "min_agreement": MIN_AGREEMENT,
              "max_abs_diff": worst}
    if any(agree.values()):
        record["action_agreement"] = {name: round(float(np.mean(a)), 6) for name, a in agree.items()}
        for name, value in record["action_agreement"].items():
            if value < MIN_AGREEMENT:
                raise KdccError(f"verify {sig.what} at {precision}: {name} agrees with the fp32 student on "
                                f"{value:.1%} of the actions (< {MIN_AGREEMENT:.0%})")
    return record
