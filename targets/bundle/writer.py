"""The deploy bundle: everything a firmware build needs, written atomically and reproducibly.

    lib/<device>/policy.so, device.txt   TVM library per device of the target ("cpu"|"cuda")
    include/kdcc_policy.h              C API + this team's sizes
    src/kdcc_policy.cc                 thin C++ over the TVM runtime
    CMakeLists.txt, kdcc_policy.cmake, kdcc_policyConfig.cmake   add_subdirectory / find_package
    runtime/<arch>/                    libtvm_runtime.so, libtvm_ffi.so (+ libtvm_runtime_cuda.so)
    runtime/include/                   tvm-ffi + dlpack headers the wrapper compiles against
    student.onnx                       the same team step, for inspection
    profile.json                       the collaboration profile (what the team needs to run)
    policy.d                           Make/Ninja depfile: rerun kdcc only when inputs change
    manifest.json                      every other file's sha256 and size (targets/bundle/integrity.py)
    kdcc.sig                           with a signing key: model-signing's signature (targets/bundle/signing.py)

`write_bundle` first checks what would otherwise fail late (the output directory, the input
files, the TVM runtime of every architecture the target needs: it is never fetched here),
then runs the named stages of `stages.STAGES`, then publishes the bundle.
Atomic: the bundle is published with `kdcc.core.fileio.atomic_write_tree` (written beside the
output, renamed at the end); on any failure or Ctrl-C an existing bundle is left untouched.
Reproducible: fixed work-dir names, no timestamps, sorted JSON, and linkers told to keep
paths out (see tvm/build.py), so the same inputs give byte-identical bundles (but kdcc.sig:
ECDSA signatures are randomised).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_tree
from kdcc.core.interrupt import check_interrupted
from kdcc.ir.spec import MarlSpec
from kdcc.targets.bundle.integrity import MANIFEST, SIGNATURE
from kdcc.targets.bundle.stages import STAGES, Build
from kdcc.targets.profile import TargetProfile

__all__ = ["BundleResult", "bundle_runtime", "write_bundle"]


@dataclass(frozen=True)
class BundleResult:
    path: Path
    build_seconds: dict[str, float]  # per device
    sizes: dict[str, int]  # bytes per top-level entry
    verification: dict[str, Any]


def _check_output(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise KdccError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise KdccError(f"{out_dir}: directory exists and is not empty (use --force to replace it)")


def _check_extra_files(extra_files: dict[str, bytes]) -> None:
    for rel in extra_files:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or rel in (MANIFEST, SIGNATURE):
            raise KdccError(f"bundle: extra file {rel!r} clashes with the bundle layout or leaves it")


def bundle_runtime(profile: TargetProfile) -> dict[str, dict[str, Path]]:
    """The TVM runtime libraries of every architecture the profile's devices run on (a CUDA
    library needs the CUDA one too); a KdccError naming the fetch command when one is absent.

    Cheap and offline: a compile can call it before its passes run, to fail in seconds.
    """
    from kdcc.targets.bundle.runtime_libs import runtime_libraries
    from kdcc.targets.tvm.build import device_arch

    arches: dict[str, bool] = {}
    for device in profile.devices:
        arch = device_arch(device)
        arches[arch] = arches.get(arch, False) or device.kind == "gpu"
    return {arch: runtime_libraries(arch, with_cuda=cuda) for arch, cuda in sorted(arches.items())}


def _sizes(files: dict[str, bytes]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for rel, data in files.items():
        top = rel.split("/", 1)[0]
        sizes[top] = sizes.get(top, 0) + len(data)
    return dict(sorted(sizes.items()))


def write_bundle(module: nn.Module, spec: MarlSpec, profile: TargetProfile, out_dir: str | Path, *,
                 force: bool = False, extra_files: dict[str, bytes] | None = None,
                 meta: dict[str, Any] | None = None, inputs: Sequence[str | Path] = (),
                 agents: dict[str, nn.Module] | None = None, monitor: nn.Module | None = None,
                 robot_costs: dict[str, Any] | None = None, certified: dict[str, Any] | None = None,
                 sign_key: str | Path | None = None, tuned: tuple[str, Path] | None = None,
                 precision: str = "fp32", calibration: dict[str, list] | None = None,
                 direct: bool = True) -> BundleResult:
    """Compile `module` (a team step) for every device of `profile` into the bundle `out_dir`.

    `agents` (role name -> that role's agent step) and `monitor` (the mixer approximation alone)
    are built too, one library per device each: what one robot runs, and a station's Q_tot;
    `robot_costs` (role -> the cost model's per-robot estimate) goes into profile.json beside them, and so
    does `certified` (the compile's certify stage: per role, the teacher's and the student's certified ε).

    `meta` is merged into profile.json (e.g. the cost envelope and fidelity figures);
    `inputs` are the files the bundle was made from (teacher, profile, dataset): hashed into
    profile.json and listed in policy.d. `sign_key` (an EC private key, PEM): the bundle is published signed.
    `tuned` (device name, MetaSchedule database directory): that device's team step is built with the
    tuning records (`kdcc.targets.tvm.tune`).
    `precision` (fp32 | fp16 | int8): the arithmetic inside every step; `calibration` ("policy", each role,
    "monitor" -> numpy input tuples the step sees on the dataset) calibrates int8 and checks fp16/int8.
    `direct=False`: no VM-free libraries (`lib/<device>/<name>.direct.so`); profile.json says they were not built.
    """
    out_dir = Path(out_dir)
    _check_output(out_dir, force)
    for p in inputs:
        if not Path(p).is_file():
            raise KdccError(f"{p}: input file not found")
    extra_files = dict(extra_files or {})
    _check_extra_files(extra_files)
    runtime = bundle_runtime(profile)
    if sign_key is not None:
        from kdcc.targets.bundle.signing import check_private_key

        sign_key = check_private_key(sign_key)
    work = out_dir.parent / f".{out_dir.name}.kdcc-tmp"
    shutil.rmtree(work, ignore_errors=True)  # left by a build that was killed
    work.mkdir(parents=True)
    try:
        build = Build(module, spec, profile, out_dir, [Path(p) for p in inputs], dict(meta or {}), runtime, work,
                      agents=dict(agents or {}), monitor=monitor, robot_costs=dict(robot_costs or {}),
                      certified=certified, extra_files=extra_files, sign_key=sign_key, tuned=tuned,
                      precision=precision, calibration=dict(calibration or {}), vm_free=direct)
        for stage in STAGES:
            stage.run(build)
            check_interrupted()  # a Ctrl-C that TVM swallowed stops the build at the next stage
        files = build.files
        atomic_write_tree(out_dir, files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BundleResult(out_dir, {lib.device: lib.seconds for lib in build.libraries}, _sizes(files),
                        build.verification)
