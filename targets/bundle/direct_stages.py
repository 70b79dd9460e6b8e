"""VM-free libraries in the bundle: `lib/<device>/<name>.direct.so` beside each CPU library.

Every step built for a CPU device (the team's `policy`, each role, the monitor) also gets
its VM-free form (`targets.tvm.direct`): the same kernels called in a fixed order from
generated C, no TVM runtime needed. It is checked against the VM library on the same
inputs — the kernels are the same, so the outputs must be equal — on this machine's form
of the step (the bundle's own library when it is built for this machine, else a throwaway
build for this CPU). A step the VM-free form cannot express keeps its VM library alone
and the bundle records why (`"direct": {"skipped": ...}`); GPU devices always do, and so does every
step of a build asked for no VM-free libraries (`write_bundle(direct=False)`, `kdcc compile --no-direct`):
such a bundle is whole without them (`kdcc eval` and the C targets run the VM libraries instead).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from kdcc.core.errors import KdccError

__all__ = ["SUFFIX", "add_direct", "verify_direct"]

SUFFIX = ".direct.so"
EXACT = 1e-6  # |VM − VM-free| allowed on float outputs (the same kernels: 0 in practice)
NOT_ASKED = "not built (--no-direct): the VM library is the step"


def add_direct(b, built, name: str) -> dict[str, Any]:
    """Build the VM-free form of `built` (a BuiltLibrary of the bundle) into b.files; its profile.json record."""
    from kdcc.targets.tvm.direct import DirectUnsupported, build_direct_library

    if not b.vm_free:
        return {"skipped": NOT_ASKED}
    if built.kind != "cpu":
        return {"skipped": "GPU kernels are launched through TVM's runtime: the VM library is the step here"}
    rel = f"lib/{built.device}/{name}{SUFFIX}"
    try:
        lib = build_direct_library(built, b.profile, b.work / rel, b.work / ".work", f"{name} step")
    except DirectUnsupported as e:
        return {"skipped": f"the step's program has {e}"}
    data = lib.path.read_bytes()
    b.files[rel] = data
    return {**lib.record(b.work), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "needs": ["libc"]}


def verify_direct(b, host_built, name: str, inputs: list[tuple]) -> dict[str, Any]:
    """The VM-free form of this machine's library `host_built` against the VM library itself, on `inputs`.

    A cross-built bundle (orin: aarch64 and CUDA) has no VM-free library that runs here, so a throwaway one
    is built from this machine's copy of the step (`build_verification_host`) and checked instead. It stays:
    the aarch64 plan is read from the same program by the same reader and written by the same C writer, with
    the same kernel calls in the same order over the same storages (only the weights' packing and the
    kernels' code are the target's own: TVM lays constants out for its vectors), so this check is what
    stands for it at compile time; nothing cheaper does, and the aarch64 libraries run only in the qemu tests.

    Raises KdccError when they differ (an action, or a float beyond EXACT); returns what was checked."""
    from kdcc.targets.tvm.direct import DirectUnsupported, build_direct_library
    from kdcc.targets.tvm.direct_runtime import DirectStep
    from kdcc.targets.tvm.runtime import HostStep

    if not b.vm_free:
        return {"checked": False, "skipped": NOT_ASKED}
    own = b.files.get(f"lib/{host_built.device}/{name}{SUFFIX}")
    path = b.work / f"lib/{host_built.device}/{name}{SUFFIX}"
    if own is None or not path.is_file():
        try:
            path = build_direct_library(host_built, b.profile, b.work / ".verify" / f"{name}{SUFFIX}",
                                        b.work / ".work", f"{name} step (verification)").path
        except DirectUnsupported:
            return {"checked": False}
    vm = HostStep(host_built.path, inputs[0])
    direct = DirectStep(path, inputs[0], vm(*[np.asarray(a) for a in inputs[0]]))
    worst = 0.0
    for args in inputs:
        arrays = [np.asarray(a) for a in args]
        want, got = vm(*arrays), direct(*arrays)
        for w, g in zip(want, got):
            if np.issubdtype(w.dtype, np.integer):
                if not np.array_equal(w, g):
                    raise KdccError(f"bundle: the VM-free {name} step chose other actions than its VM library")
            else:
                worst = max(worst, float(np.max(np.abs(w.astype(np.float64) - g))))
    if worst > EXACT:
        raise KdccError(f"bundle: the VM-free {name} step differs from its VM library by {worst:.3g}")
    return {"checked": True, "inputs": len(inputs), "max_abs_diff_vs_vm": worst}
