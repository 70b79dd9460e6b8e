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
from kdcc.targets.profile import DeviceProfile, TargetProfile
from kdcc.targets.tvm import toolchain
from kdcc.targets.tvm.build import device_arch, resolve_target
from kdcc.targets.tvm.direct_plan import DirectUnsupported, StepPlan, step_plan
from kdcc.targets.tvm.direct_source import c_source, version_script

__all__ = ["DirectLibrary", "DirectUnsupported", "lower_for_direct", "build_direct_library"]


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


def lower_for_direct(relax_mod, target):
    """(lowered module, plan of `main`): kdcc's CPU pipeline, then the static plan (DirectUnsupported if none)."""
    from kdcc.targets.tvm.schedules import cpu_pipeline

    if target.kind.name != "llvm":
        raise DirectUnsupported(f"a {target.kind.name} device (kernels launched through TVM's runtime)")
    with target:
        lowered = cpu_pipeline(target)(relax_mod)
    return lowered, step_plan(lowered["main"])


def _kernels_object(lowered, plan: StepPlan, target, path: Path) -> None:
    """The PrimFuncs `main` calls, compiled for `target` without argument asserts, as one object file."""
    import tvm

    called = {c.kernel for c in plan.calls}
    kernels = tvm.IRModule({gv: f for gv, f in lowered.functions.items()
                            if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint in called})
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        built = tvm.tirx.build(kernels, target)
    built.write_to_file(str(path))


def build_direct_library(relax_mod, device: DeviceProfile, profile: TargetProfile, out_path: Path,
                         workdir: Path, title: str) -> DirectLibrary:
    """Compile `relax_mod`'s `main` for one CPU device as a VM-free library at `out_path` (module docstring)."""
    import tvm
    import tvm_ffi.libinfo

    started = time.perf_counter()
    where = f"target {profile.name} [device {device.name}]"
    target_dict = resolve_target(device)
    target = tvm.target.Target(target_dict)
    lowered, plan = lower_for_direct(relax_mod, target)
    arch = device_arch(device)
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
    return DirectLibrary(device.name, arch, out_path, len(plan.calls), sum(plan.storages),
                         sum(c.nbytes for c in plan.constants), compiler, time.perf_counter() - started)
