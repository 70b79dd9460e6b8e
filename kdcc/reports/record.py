"""`--record DIR`: a snapshot per pass that `kdcc check` compares against a golden record.

    DIR/manifest.json             pipeline, seed, target, versions, input hashes
    DIR/NN_<pass>/program.txt     the stable text form after the pass
    DIR/NN_<pass>/metrics.json    cost metrics, fidelity, decisions
    DIR/NN_<pass>/probe.npz       outputs on the fixed probe (actions, q, q_tot)
    DIR/timings.json              wall time per pass (never compared)
"""

from __future__ import annotations

import json
import platform
from typing import Any, Sequence

import numpy as np

from kdcc import __version__
from kdcc.core.fileio import npz_bytes
from kdcc.passes.manager import PassRecord

__all__ = ["record_files", "versions"]


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    out = {"kdcc": __version__, "torch": str(torch.__version__), "numpy": np.__version__, "onnx": onnx.__version__,
           "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}
    try:
        from importlib.metadata import version

        out["apache-tvm"] = version("apache-tvm")
    except Exception:  # noqa: BLE001 - TVM is optional for a record
        pass
    return out


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode()


def record_files(records: Sequence[PassRecord], manifest: dict[str, Any]) -> dict[str, bytes]:
    files = {"manifest.json": _json({**manifest, "passes": [r.name for r in records]}),
             "timings.json": _json({f"{r.index:02d}_{r.name}": round(r.wall_s, 4) for r in records})}
    for r in records:
        d = f"{r.index:02d}_{r.name}"
        files[f"{d}/program.txt"] = r.text.encode()
        files[f"{d}/metrics.json"] = _json({"metrics": r.metrics, "fidelity": r.fidelity, "decisions": r.decisions})
        files[f"{d}/probe.npz"] = npz_bytes(r.outputs)
    return files
