"""Running a compiled bundle in MPE: its library when one runs on this machine, else its ONNX graph.

An `orin` bundle holds aarch64 and CUDA libraries only. Its `student.onnx` is
the same team graph (lowered from the same program, and checked at compile
time to agree with the TVM host build to 1e-5), so ONNX Runtime can stand in
for it here: what is evaluated is still what ships.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.ir.spec import MarlSpec, check_claimed_sizes

__all__ = ["open_bundle", "open_bundle_policy"]


class _LibraryPolicy:
    """The bundle's compiled host library (TVM), stepped as the C API steps it."""

    def __init__(self, library):
        self.library = library

    def reset(self) -> None:
        self.library.reset()

    def step(self, obs, last_actions, state):
        return self.library.step(obs, last_actions, state)[0]


class _OnnxPolicy:
    """The bundle's student.onnx in ONNX Runtime (one thread), carrying the hidden state."""

    def __init__(self, path: Path, spec):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT's own Fail/InvalidProtobuf types for a graph that does not load
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise KdccError(f"{path}: not a loadable ONNX graph ({first})") from None
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self.hidden = np.zeros((self.spec.n_agents, self.spec.agent.hidden_dim), np.float32)

    def step(self, obs, last_actions, state):
        feeds = {"obs": obs.astype(np.float32), "last_actions": last_actions.astype(np.int64),
                 "hidden": self.hidden, "state": state.astype(np.float32)}
        actions, _, hidden, _ = self.session.run(["actions", "q", "new_hidden", "q_tot"],
                                                 {k: v for k, v in feeds.items() if k in self.inputs})
        self.hidden = hidden
        return actions


def _profile(root: Path) -> tuple[dict, MarlSpec]:
    from kdcc.targets.bundle.collab_profile import FORMAT

    try:
        doc = json.loads((root / "profile.json").read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}")
        spec = MarlSpec.from_dict(doc["spec"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise KdccError(f"{root}: not a kdcc bundle ({e})") from None
    check_claimed_sizes(spec, bundle_bytes(root), f"{root}/profile.json")
    return doc, spec


def bundle_bytes(root: Path) -> int:
    """What the bundle holds on disk: the bound on what its profile.json may make a runner allocate."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def open_bundle(bundle_dir: str | Path):
    """The bundle's library for this machine (for `kdcc eval BUNDLE_DIR`): its VM-free form
    (`DirectPolicy`) when the bundle has one, else the Relax VM library (`HostPolicy`).

    Raises KdccError when the directory is not a kdcc bundle or holds no library that runs here
    (an orin bundle is aarch64 only). Its files are not checked against the manifest here:
    `open_bundle_policy` does that.
    """
    from kdcc.targets.tvm.runtime import HostPolicy  # lazy: pulls in TVM

    root = Path(bundle_dir)
    doc, spec = _profile(root)
    here = [lib for lib in doc.get("libraries", []) if lib.get("arch") == platform.machine() and lib.get("kind") == "cpu"]
    if not here:
        have = ", ".join(f"{lib['device']} ({lib['arch']})" for lib in doc.get("libraries", []))
        raise KdccError(f"{root}: no library in this bundle runs on {platform.machine()} (it has: {have})")
    from kdcc.targets.tvm.direct_runtime import DirectPolicy, direct_path

    direct = direct_path(here[0])
    if direct:

        return DirectPolicy(root / direct, spec)
    return HostPolicy(root / here[0]["path"], spec)


def open_bundle_policy(path: str | Path, runner: str = "auto"):
    """(spec, policy, what runs) for a bundle directory; `runner`: auto (the host library when one runs
    here, else student.onnx) | library | onnx. A bundle whose files differ from its manifest is refused."""
    from kdcc.targets.bundle.integrity import check_bundle

    os.environ.setdefault("TVM_NUM_THREADS", "1")  # tiny graphs: waking a thread pool costs more
    _, spec = _profile(Path(path))
    check_bundle(path)
    if runner != "onnx":
        try:
            library = open_bundle(path)
            kind = "VM-free" if type(library).__name__ == "DirectPolicy" else "Relax VM"
            return library.spec, _LibraryPolicy(library), f"compiled host library ({kind})"
        except KdccError as e:
            if (runner == "library" or "no library in this bundle runs" not in str(e)
                    or not (Path(path) / "student.onnx").is_file()):
                raise
    return spec, _OnnxPolicy(Path(path) / "student.onnx", spec), "student.onnx in ONNX Runtime (no library here)"
