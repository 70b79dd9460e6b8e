"""Building a VM-free step library: the compiled kernels plus one generated C file, no TVM runtime.

The Relax VM library (`build.build_library`) interprets the step's `main` on every call:
argument checks, allocation from its pool, a packed call per kernel, result tuples — ~2–3 µs
for a step whose arithmetic takes a fraction of that. Here the same module goes through the
same CPU pipeline, its `main` is read into a static plan (`direct_plan`), the kernels are
compiled without their argument asserts, and `direct_source` writes the plan as C. The two
link into one shared library that needs libc and libm only, so a robot installs the
library and nothing else (no libtvm_runtime / libtvm_ffi).

CPU devices only: a GPU step keeps its VM library (its kernels are launched through the
CUDA module of TVM's runtime).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.targets.profile import TargetProfile
from kdcc.targets.tvm import toolchain
from kdcc.targets.tvm.build import BuiltLibrary
from kdcc.targets.tvm.direct_plan import DirectUnsupported, StepPlan, step_plan
from kdcc.targets.tvm.direct_source import c_source, version_script

__all__ = ["DirectLibrary", "DirectUnsupported", "direct_plan", "build_direct_library"]


@dataclass(frozen=True)
class DirectLibrary:
    device: str
    arch: str
    path: Path
    kernels: int  # compiled kernels called per step
    storage_bytes: int  # the step's planned working memory, allocated once at create
    constant_bytes: int
    compiler: str
    seconds: float

    def record(self, root: Path) -> dict:
        return {"path": self.path.relative_to(root).as_posix(), "kernels": self.kernels,
                "storage_bytes": self.storage_bytes, "constant_bytes": self.constant_bytes, "compiler": self.compiler}


def direct_plan(lowered, target) -> StepPlan:
    """The static plan of a module after kdcc's CPU pipeline (`BuiltLibrary.lowered`); DirectUnsupported
    when the device is no CPU or `main` is not straight-line code over a static memory plan."""
    if target.kind.name != "llvm":
        raise DirectUnsupported(f"a {target.kind.name} device (kernels launched through TVM's runtime)")
    return step_plan(lowered["main"])


def _kernels_object(lowered, plan: StepPlan, target, path: Path) -> None:
    """The PrimFuncs `main` calls, compiled for `target` without argument asserts, as one object file."""
    import tvm

    called = {c.kernel for c in plan.calls}
    kernels = tvm.IRModule({gv: f for gv, f in lowered.functions.items()
                            if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint in called})
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        built = tvm.tirx.build(kernels, target)
    built.write_to_file(str(path))


def build_direct_library(built: BuiltLibrary, profile: TargetProfile, out_path: Path, workdir: Path,
                         title: str) -> DirectLibrary:
    """The VM-free form of a CPU device's VM library `built` (same pipeline, same kernels), at `out_path`."""
    import tvm
    import tvm_ffi.libinfo

    started = time.perf_counter()
    where = f"target {profile.name} [device {built.device}]"
    target = tvm.target.Target(built.target)
    lowered = built.lowered
    plan = direct_plan(lowered, target)
    arch = built.arch
    compiler, command = toolchain.c_compiler(arch, where)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        _kernels_object(lowered, plan, target, workdir / "kernels.o")
        (workdir / "step.c").write_text(c_source(plan, title))
        (workdir / "exports.map").write_text(version_script())
        includes = [f"-I{p}" for p in (tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path())]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*command, "-shared", "-fPIC", "-O2", "-std=c11", "-g0", "-fvisibility=hidden",
               f"-ffile-prefix-map={workdir}=.", *includes, "step.c", "kernels.o", "-o", str(out_path.resolve()),
               "-Wl,--version-script=exports.map", "-Wl,--build-id=none", "-lm"]
        run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        if run.returncode != 0:
            detail = " ".join((run.stderr or run.stdout).split())[:400]
            raise KdccError(f"{where}: linking {out_path.name} with {compiler} failed ({detail})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return DirectLibrary(built.device, arch, out_path, len(plan.calls), sum(plan.storages),
                         sum(c.nbytes for c in plan.constants), compiler, time.perf_counter() - started)
