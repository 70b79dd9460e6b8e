"""The deploy bundle: everything a firmware build needs, written atomically and reproducibly.

    lib/<device>/policy.so, device.txt   TVM library per device of the target ("cpu"|"cuda")
    include/kdcc_policy.h              C API + this team's sizes
    src/kdcc_policy.cc                 thin C++ over the TVM runtime
    CMakeLists.txt, kdcc_policy.cmake, kdcc_policyConfig.cmake   add_subdirectory / find_package
    runtime/<arch>/                    libtvm_runtime.so, libtvm_ffi.so (+ _cuda) or MISSING.txt
    runtime/include/                   tvm-ffi + dlpack headers the wrapper compiles against
    student.onnx                       the same team step, for inspection
    profile.json                       the collaboration profile (what the team needs to run)
    policy.d                           Make/Ninja depfile: rerun kdcc only when inputs change

Atomic: everything is built in `.<name>.kdcc-tmp` beside the output and renamed at the end;
on any failure that directory is removed and an existing bundle is left untouched.
Reproducible: fixed work-dir names, no timestamps, sorted JSON, and linkers told to keep
paths out (see tvm_build), so the same inputs give byte-identical bundles.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

import kdcc
from kdcc.core.errors import KdccError
from kdcc.core.interrupt import check_interrupted
from kdcc.ir.spec import MarlSpec
from kdcc.targets.bundle import sources as src
from kdcc.targets.bundle.collab_profile import collaboration_profile
from kdcc.targets.profile import TargetProfile

__all__ = ["BundleResult", "write_bundle", "open_bundle"]


@dataclass(frozen=True)
class BundleResult:
    path: Path
    build_seconds: dict[str, float]  # per device
    sizes: dict[str, int]  # bytes per top-level entry
    verification: dict[str, Any]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _weights_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float64 if tensor.is_floating_point() else torch.int64).numpy().tobytes())
    return h.hexdigest()


def _depfile(out_dir: Path, inputs: Sequence[Path]) -> str:
    """Make syntax (Ninja reads it too): the bundle's profile.json depends on every input."""
    def esc(p: Path) -> str:
        return str(p).replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")
    deps = " \\\n  ".join(esc(p) for p in inputs)
    return f"{esc(out_dir / 'profile.json')}: {deps}\n" if inputs else f"{esc(out_dir / 'profile.json')}:\n"


def _copy_runtime(root: Path, libraries) -> dict[str, Any]:
    from kdcc.targets.bundle import runtime_libs

    record: dict[str, Any] = {"versions": runtime_libs.runtime_versions()}
    for arch in sorted({lib.arch for lib in libraries}):
        dest = root / "runtime" / arch
        dest.mkdir(parents=True)
        found = runtime_libs.runtime_libraries(arch, with_cuda=any(l.arch == arch and l.kind == "gpu" for l in libraries))
        if found is None:
            (dest / "MISSING.txt").write_text(runtime_libs.fetch_instructions(arch))
            record[arch] = "missing: see runtime/%s/MISSING.txt" % arch
            continue
        for name, path in sorted(found.items()):
            shutil.copyfile(path, dest / name)
        record[arch] = sorted(found)
    include = runtime_libs.ffi_include_dir()
    for sub in ("tvm/ffi", "dlpack"):
        shutil.copytree(include / sub, root / "runtime" / "include" / sub)
    return record


def _write_sources(root: Path, spec: MarlSpec, libraries, student_sha: str) -> None:
    version = kdcc.__version__
    (root / "include").mkdir()
    (root / "src").mkdir()
    (root / "include" / "kdcc_policy.h").write_text(src.HEADER.format(
        version=version, n_agents=spec.n_agents, obs_dim=spec.obs_dim, state_dim=spec.state_dim,
        n_actions=spec.n_actions, hidden_dim=spec.agent.hidden_dim,
        devices=",".join(l.device for l in libraries), student_sha256=student_sha))
    (root / "src" / "kdcc_policy.cc").write_text(src.SOURCE)
    arches = sorted({l.arch for l in libraries})
    arch_devices = "\n".join(f'set(KDCC_POLICY_DEVICES_{a} "{";".join(l.device for l in libraries if l.arch == a)}")'
                             for a in arches) + f'\nset(KDCC_POLICY_ARCHES "{";".join(arches)}")'
    (root / "kdcc_policy.cmake").write_text(src.CMAKE_MODULE.format(version=version, arch_devices=arch_devices))
    (root / "CMakeLists.txt").write_text(src.CMAKE_LISTS)
    (root / "kdcc_policyConfig.cmake").write_text(src.CMAKE_CONFIG)


def _build(module: nn.Module, spec: MarlSpec, profile: TargetProfile, root: Path, out_dir: Path,
           inputs: Sequence[Path], extra_files: dict[str, bytes], meta: dict[str, Any]) -> BundleResult:
    from kdcc.targets.tvm.build import build_library
    from kdcc.targets.tvm.lowering import onnx_bytes, to_relax
    from kdcc.targets.tvm.verify import verify_team_step

    relax_mod = to_relax(module, spec)
    libraries = [build_library(relax_mod, d, profile, root / "lib" / d.name / "policy.so", root / ".work")
                 for d in profile.devices]
    for lib in libraries:
        (lib.path.parent / "device.txt").write_text("cuda\n" if lib.kind == "gpu" else "cpu\n")
    student = onnx_bytes(module, spec)
    (root / "student.onnx").write_bytes(student)
    host = next((l.path for l in libraries if l.arch == platform.machine() and l.kind == "cpu"), None)
    if host is None:  # no library runs here (e.g. orin): build a throwaway host one to verify with
        probe = replace(profile.devices[0], name="verify", kind="cpu", tvm_host=None, cross_triple=None,
                        tvm_target={"kind": "llvm", "mcpu": "native"})
        host = build_library(relax_mod, probe, profile, root / ".verify" / "policy.so", root / ".work").path
    verification = verify_team_step(module, spec, student, host)
    shutil.rmtree(root / ".verify", ignore_errors=True)
    runtime = _copy_runtime(root, libraries)
    _write_sources(root, spec, libraries, _sha256(student))
    hashes = {"student.onnx": _sha256(student), "student_weights": _weights_sha256(module),
              "inputs": {str(p): _sha256(Path(p).read_bytes()) for p in inputs}}
    doc = collaboration_profile(spec, profile, [l.record(root) for l in libraries], runtime,
                                verification, hashes, meta)
    (root / "profile.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (root / "policy.d").write_text(_depfile(out_dir, inputs))
    for rel, data in sorted(extra_files.items()):
        path = root / rel
        if path.exists() or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise KdccError(f"bundle: extra file {rel!r} clashes with the bundle layout or leaves it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    sizes = {p.name: sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
             for p in sorted(root.iterdir())}
    return BundleResult(out_dir, {l.device: l.seconds for l in libraries}, sizes, verification)


def write_bundle(module: nn.Module, spec: MarlSpec, profile: TargetProfile, out_dir: str | Path, *,
                 force: bool = False, extra_files: dict[str, bytes] | None = None,
                 meta: dict[str, Any] | None = None, inputs: Sequence[str | Path] = ()) -> BundleResult:
    """Compile `module` (a team step) for every device of `profile` into the bundle `out_dir`.

    `meta` is merged into profile.json (e.g. the cost envelope and fidelity figures);
    `inputs` are the files the bundle was made from (teacher, profile, dataset): hashed into
    profile.json and listed in policy.d.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise KdccError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise KdccError(f"{out_dir}: directory exists and is not empty (use --force to replace it)")
    for p in inputs:
        if not Path(p).is_file():
            raise KdccError(f"{p}: input file not found")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.kdcc-tmp"
    old = out_dir.parent / f".{out_dir.name}.kdcc-old"
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        result = _build(module, spec, profile, tmp, out_dir, [Path(p) for p in inputs],
                        dict(extra_files or {}), dict(meta or {}))
        check_interrupted()  # a Ctrl-C swallowed during the build must still leave `out_dir` as it was
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out_dir.exists():
            old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return result


def open_bundle(bundle_dir: str | Path):
    """The bundle's library for this machine as a `HostPolicy` (for `kdcc eval BUNDLE_DIR`).

    Raises KdccError when the directory is not a kdcc bundle or holds no library that runs here
    (an orin bundle is aarch64 only).
    """
    from kdcc.targets.bundle.collab_profile import FORMAT
    from kdcc.targets.tvm.build import HostPolicy

    root = Path(bundle_dir)
    try:
        doc = json.loads((root / "profile.json").read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}")
        spec = MarlSpec.from_dict(doc["spec"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise KdccError(f"{root}: not a kdcc bundle ({e})") from None
    here = [lib for lib in doc.get("libraries", []) if lib.get("arch") == platform.machine() and lib.get("kind") == "cpu"]
    if not here:
        have = ", ".join(f"{lib['device']} ({lib['arch']})" for lib in doc.get("libraries", []))
        raise KdccError(f"{root}: no library in this bundle runs on {platform.machine()} (it has: {have})")
    return HostPolicy(root / here[0]["path"], spec)
