"""Code generation: one TVM shared library per device of a target profile.

Each device is built with `relax.build(..., exec_mode="compiled")` and a full Relax pipeline
(a plain build neither folds constants nor fuses ops): TVM's default for GPUs, and for CPUs
`schedules.cpu_pipeline`, which is the default plus kdcc's schedule for the small GEMMs of a
team step (TVM's default CPU schedule is ~40× slower for 256-wide layers). Compiled mode turns
the VM's bytecode into native code; together they take a tiny policy's call from ~12 to ~3 µs.

Traps this module owns:
- `"mcpu": "native"` is accepted by TVM but builds generic x86 (SSE2); it is replaced by the
  CPU LLVM reports for this machine (`llvm_get_system_cpu`).
- aarch64 libraries are linked with the pinned pip `ziglang` (or Debian's cross gcc), see
  `toolchain.py`; CUDA kernels go through the local nvcc, and become PTX whenever that nvcc
  is newer than the CUDA of the target's JetPack (a newer cubin fails there with
  CUDA_ERROR_INVALID_IMAGE).
- Builds happen in a fixed-name work dir so no random temp path reaches the library bytes.
- A kdcc schedule that fails on a kernel leaves it to TVM's default schedule (for a GEMM ~40-50x slower):
  never silently, `BuiltLibrary.fallbacks` names each such kernel and why, and profile.json carries it.
- Only what the user chose is reported as bad input (one line, exit 2): a tvm_target TVM rejects, a
  linker that refuses the library. Any other failure in TVM's pipeline is a bug in kdcc or TVM and
  propagates as it is (`kdcc -v` shows its traceback).

Running a built library from Python is `runtime.HostPolicy`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcc.core.errors import KdccError
from kdcc.targets.profile import DeviceProfile, TargetProfile
from kdcc.targets.tvm import toolchain

__all__ = ["BuiltLibrary", "schedule_fallbacks", "resolve_target", "device_arch", "tvm_target", "build_library"]


@dataclass(frozen=True)
class BuiltLibrary:
    """What was built for one device, and how (recorded in the bundle's profile.json)."""

    device: str
    kind: str  # "cpu" | "gpu"
    arch: str  # machine of the library: "x86_64" | "aarch64"
    path: Path
    target: dict[str, Any]  # the TVM target actually used (after "native" was resolved)
    linker: str
    seconds: float
    gpu: dict[str, str] = field(default_factory=dict)  # image kind, PTX ISA, nvcc/CUDA versions
    fallbacks: dict[str, str] = field(default_factory=dict)  # kernel -> why kdcc's schedule failed on it
    lowered: Any = field(default=None, repr=False, compare=False)  # the module after the pipeline (VM-free build)

    def record(self, root: Path) -> dict[str, Any]:
        """JSON-able description with the path relative to `root`."""
        return {"device": self.device, "kind": self.kind, "arch": self.arch,
                "path": self.path.relative_to(root).as_posix(), "tvm_target": self.target,
                "linker": self.linker, **({"gpu": self.gpu} if self.gpu else {}), **self.schedule_record()}

    def schedule_record(self) -> dict[str, Any]:
        """profile.json's `"schedule"` entry, present only when kernels fell back to TVM's default schedule."""
        if not self.fallbacks:
            return {}
        return {"schedule": {"fallbacks": [{"kernel": k, "reason": why} for k, why in sorted(self.fallbacks.items())]}}


def schedule_fallbacks(lowered) -> dict[str, str]:
    """Kernel name -> why kdcc's schedule failed on it, for the PrimFuncs `schedules.fell_back` marked."""
    from tvm import tirx

    from kdcc.targets.tvm.schedules import FALLBACK_ATTR

    return {gv.name_hint: str(f.attrs[FALLBACK_ATTR]) for gv, f in lowered.functions.items()
            if isinstance(f, tirx.PrimFunc) and f.attrs is not None and FALLBACK_ATTR in f.attrs}


def _resolve_cpu(target: dict[str, Any]) -> dict[str, Any]:
    if target.get("mcpu") != "native":
        return dict(target)
    from tvm.target.codegen import llvm_get_system_cpu

    return {**target, "mcpu": str(llvm_get_system_cpu())}


def resolve_target(device: DeviceProfile) -> dict[str, Any]:
    """The device's TVM target as a JSON dict, host included, with "native" CPUs named."""
    target = _resolve_cpu(device.tvm_target)
    if device.tvm_host is not None:
        target["host"] = _resolve_cpu(device.tvm_host)
    elif isinstance(target.get("host"), dict):
        target["host"] = _resolve_cpu(target["host"])
    return target


def device_arch(device: DeviceProfile) -> str:
    """The machine a device's library runs its host code on: the cross triple's, else the host
    target's mtriple, else this one. Known from the profile alone, before anything is built
    (the bundle writer checks the TVM runtime of every architecture first)."""
    if device.cross_triple:
        return device.cross_triple.split("-")[0]
    host = device.tvm_host or device.tvm_target.get("host")
    if not isinstance(host, dict):  # no host given: an LLVM target is its own host, a GPU's is this CPU
        host = device.tvm_target if device.tvm_target.get("kind") == "llvm" else {}
    triple = str(host.get("mtriple", ""))
    return triple.split("-")[0] if triple else platform.machine()


# TVM's C++ LOG(WARNING) lines that say nothing about kdcc's graphs: the gather of the greedy action's Q
# lowers to `take(mode="fast")`, whose indices come from argmax over the same axis and are always in range.
_BENIGN_NATIVE_WARNINGS = ("Fast mode segfaults when there are out-of-bounds indices",)


@contextlib.contextmanager
def _filtered_native_stderr(drop: tuple[str, ...] = _BENIGN_NATIVE_WARNINGS):
    """TVM's C++ logging writes straight to file descriptor 2: hold it during the build and pass on
    every line but the known-benign ones (so `-q` is quiet and real warnings still show)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not any(d in line for d in drop):
                    sys.stderr.write(line)


def tvm_target(device: DeviceProfile, profile: TargetProfile):
    """(the device's TVM Target, host set, and its JSON dict with "native" CPUs named)."""
    import tvm

    target_dict = resolve_target(device)
    try:
        target = tvm.target.Target(target_dict)
    except (ValueError, TypeError) as e:  # the profile's: an unknown kind or option, a value of the wrong type
        raise KdccError(f"target {profile.name} [device {device.name}]: TVM rejects tvm_target {target_dict} ({e})") from e
    if target.host is None:  # TVM would put the VM's host code on this machine's CPU
        host = {k: v for k, v in target_dict.items() if k != "host"} if target.kind.name == "llvm" else {"kind": "llvm"}
        target = tvm.target.Target(target_dict, host=host)
    return target, target_dict


def build_library(relax_mod, device: DeviceProfile, profile: TargetProfile, out_path: Path,
                  workdir: Path, database: Path | None = None) -> BuiltLibrary:
    """Compile `relax_mod` for one device and export it to `out_path` (a shared library).

    `database`: a MetaSchedule tuning database directory (`tune.py`) whose records replace kdcc's
    schedule for the CPU kernels they cover."""
    import tvm
    from tvm import relax

    started = time.perf_counter()
    where = f"target {profile.name} [device {device.name}]"
    target, target_dict = tvm_target(device, profile)
    arch = device_arch(device)
    gpu: dict[str, str] = {}
    extra: dict[str, Any] = {}
    hook = contextlib.nullcontext()
    if target.kind.name == "cuda":
        gpu = toolchain.gpu_image_kind(toolchain.nvcc_version(where), profile.cuda_version, where)
        extra["fpack_imports"] = toolchain.pack_cuda_imports(gpu, str(target.arch))
        hook = toolchain.cuda_compile_callback(gpu, str(target.arch), workdir)
    pipeline = relax.get_default_pipeline(target)
    if target.kind.name == "llvm":  # CPU devices: kdcc's schedule for small GEMMs; GPUs keep TVM's
        from kdcc.targets.tvm.schedules import cpu_pipeline

        pipeline = cpu_pipeline(target, database=database)
    with hook, _filtered_native_stderr():  # kdcc's own graph: a failure here is a bug, not bad input
        with target:
            lowered = pipeline(relax_mod)
        exe = relax.build(lowered, target, relax_pipeline=tvm.transform.Sequential([]), exec_mode="compiled")
    linker, fcompile = toolchain.linker_for(arch, where)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # -g0 and the prefix map keep the work dir's path out of the library (byte-identical builds)
        exe.export_library(str(out_path), fcompile=fcompile, workspace_dir=str(workdir),
                           options=["-g0", f"-ffile-prefix-map={workdir}=."], **extra)
    except RuntimeError as e:
        if not str(e).startswith("Compilation error"):  # tvm.support.cc's word for a linker that exited non-zero
            raise
        detail = " ".join(str(e).split())[:400]
        raise KdccError(f"{where}: linking {out_path.name} with {linker} failed ({detail})") from e
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return BuiltLibrary(device.name, device.kind, arch, out_path, target_dict, linker,
                        time.perf_counter() - started, gpu, schedule_fallbacks(lowered), lowered)
