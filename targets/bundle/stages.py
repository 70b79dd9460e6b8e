"""The stages of a bundle build, in order: `STAGES` reads top to bottom as the story of a build.

Each stage is a small function of the `Build` in progress: it reads what earlier stages left
there and adds the bundle's files to `build.files` (bundle path -> bytes); nothing is written
to the output directory until `writer.write_bundle` publishes them all at once. TVM writes its
libraries under `build.work`, a scratch directory with a fixed name beside the output, so no
random path reaches the library bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn

from kdcc.ir.spec import MarlSpec
from kdcc.targets.bundle.collab_profile import collaboration_profile
from kdcc.targets.bundle.direct_stages import add_direct, verify_direct
from kdcc.targets.bundle.integrity import MANIFEST, SIGNATURE, manifest_bytes
from kdcc.targets.bundle.robot_profile import robot_entry
from kdcc.targets.bundle.sources import bundle_sources
from kdcc.targets.profile import TargetProfile

__all__ = ["Build", "Stage", "STAGES"]


@dataclass
class Build:
    """What a bundle build knows so far. The inputs come first; the stages fill in the rest."""

    module: nn.Module  # the team step
    spec: MarlSpec
    profile: TargetProfile
    out_dir: Path
    inputs: Sequence[Path]  # files the bundle is made from: hashed into profile.json, listed in policy.d
    meta: dict[str, Any]  # merged into profile.json
    runtime: dict[str, dict[str, Path]]  # arch -> runtime library name -> path (checked before the build)
    work: Path  # scratch directory for TVM's outputs
    files: dict[str, bytes] = field(default_factory=dict)  # the bundle: path -> bytes
    relax_mod: Any = None
    student_onnx: bytes = b""
    libraries: list = field(default_factory=list)  # BuiltLibrary per device, in the profile's order
    host_library: Path | None = None  # a library this machine runs, to verify with
    host_built: Any = None  # the BuiltLibrary behind host_library
    direct: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> the team step's VM-free library
    verification: dict[str, Any] = field(default_factory=dict)
    runtime_record: dict[str, Any] = field(default_factory=dict)
    agents: dict[str, nn.Module] = field(default_factory=dict)  # role name -> its agent step (one robot)
    monitor: nn.Module | None = None  # the team monitor (mixer approximation), for a central station
    roles: list = field(default_factory=list)  # RoleArtifact per role, then the monitor's
    robot_costs: dict[str, Any] = field(default_factory=dict)  # role -> the cost model's per-robot estimate
    certified: dict[str, Any] | None = None  # the compile's certify stage (kdcc.flow.certify_compile), if it ran
    extra_files: dict[str, bytes] = field(default_factory=dict)  # the compile's own files: reports, record/
    sign_key: Path | None = None  # an EC private key (PEM) to sign the bundle with, checked before the build
    tuned: tuple[str, Path] | None = None  # (device, MetaSchedule database): --tune's records for its team step
    precision: str = "fp32"  # arithmetic inside every step: fp32 | fp16 | int8 (targets/tvm/precision.py)
    calibration: dict[str, list] = field(default_factory=dict)  # "policy" | role | "monitor" -> numpy input tuples
    vm_free: bool = True  # build each CPU step's VM-free library too (direct_stages.py); False: the VM libraries alone


class Stage(NamedTuple):
    name: str
    run: Callable[[Build], None]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lower(b: Build) -> None:
    """The team step as a Relax module (GRU cells decomposed into plain ops) at the bundle's precision,
    lowered once for all devices."""
    from kdcc.targets.tvm.lowering import to_relax
    from kdcc.targets.tvm.precision import apply_precision

    b.relax_mod = apply_precision(to_relax(b.module, b.spec), b.precision, b.calibration.get("policy", ()))


def export_onnx(b: Build) -> None:
    """student.onnx: the same team step for inspection, and what ONNX Runtime runs where no library does."""
    from kdcc.targets.onnx_precision import onnx_at_precision
    from kdcc.targets.tvm.lowering import INPUT_NAMES, onnx_bytes

    b.student_onnx = onnx_at_precision(onnx_bytes(b.module, b.spec), b.precision, INPUT_NAMES,
                                       b.calibration.get("policy", ()))
    b.files["student.onnx"] = b.student_onnx


def build_devices(b: Build) -> None:
    """lib/<device>/policy.so and device.txt ("cpu"|"cuda", read by the C++ wrapper), one TVM build per device;
    the tuned device's with its tuning records."""
    from kdcc.targets.tvm.build import build_library

    for device in b.profile.devices:
        database = b.tuned[1] if b.tuned is not None and b.tuned[0] == device.name else None
        lib = build_library(b.relax_mod, device, b.profile, b.work / "lib" / device.name / "policy.so",
                            b.work / ".work", database=database)
        b.libraries.append(lib)
        b.files[f"lib/{device.name}/policy.so"] = lib.path.read_bytes()
        b.files[f"lib/{device.name}/device.txt"] = b"cuda\n" if lib.kind == "gpu" else b"cpu\n"
        b.direct[device.name] = add_direct(b, lib, "policy")


def build_verification_host(b: Build) -> None:
    """A library this machine runs, to verify with: the bundle's own CPU library when it is built
    for this machine, else a second, throwaway TVM build of the same module for this CPU (an orin
    bundle holds aarch64 and CUDA libraries only). It is not shipped."""
    from kdcc.targets.tvm.build import build_library

    here = next((lib for lib in b.libraries if lib.arch == platform.machine() and lib.kind == "cpu"), None)
    if here is None:
        probe = replace(b.profile.devices[0], name="verify", kind="cpu", tvm_host=None, cross_triple=None,
                        tvm_target={"kind": "llvm", "mcpu": "native"})
        here = build_library(b.relax_mod, probe, b.profile, b.work / ".verify" / "policy.so", b.work / ".work")
    b.host_built, b.host_library = here, here.path


def verify(b: Build) -> None:
    """torch, ONNX Runtime and the host library agree over a probe episode, or the build fails; at fp16 or
    int8, they agree with the fp32 student closely enough (targets/tvm/precision_check.py). The VM-free
    team step equals the VM library's at any precision."""
    from kdcc.ir.team import team_example_inputs
    from kdcc.targets.tvm.lowering import team_signature
    from kdcc.targets.tvm.precision_check import check_precision
    from kdcc.targets.tvm.verify import verify_team_step

    if b.precision == "fp32":
        b.verification = verify_team_step(b.module, b.spec, b.student_onnx, b.host_library)
    else:
        b.verification = check_precision(b.module, team_signature(b.spec), b.student_onnx, b.host_library,
                                         b.calibration.get("policy", ()), b.precision)
    inputs = [tuple(x.numpy() for x in team_example_inputs(b.spec, seed)) for seed in range(4)]
    b.verification["direct"] = verify_direct(b, b.host_built, "policy", inputs)


def build_roles(b: Build) -> None:
    """lib/<device>/<role>.so and agents/<role>.onnx: what one robot runs, one library per role and device,
    each checked on torch, ONNX Runtime and a host build (see role_stages)."""
    from kdcc.ir.agent_step import agent_example_inputs
    from kdcc.ir.roles import team_roles
    from kdcc.targets.bundle.role_stages import VERIFY_INPUTS, build_step_libraries, role_signature

    for role in team_roles(b.spec):
        if role.name not in b.agents:
            continue
        inputs = [agent_example_inputs(b.spec, role, seed) for seed in range(VERIFY_INPUTS)]
        b.roles.append(build_step_libraries(b, role.name, b.agents[role.name], role_signature(b.spec, role), inputs))


def build_monitor(b: Build) -> None:
    """lib/<device>/monitor.so and agents/monitor.onnx: Q_tot from the agents' chosen Q-values and the state."""
    if b.monitor is None:
        return
    from kdcc.ir.agent_step import monitor_example_inputs
    from kdcc.targets.bundle.role_stages import VERIFY_INPUTS, build_step_libraries, monitor_signature

    inputs = [monitor_example_inputs(b.spec, seed) for seed in range(VERIFY_INPUTS)]
    b.roles.append(build_step_libraries(b, "monitor", b.monitor, monitor_signature(b.spec), inputs))


def copy_runtime(b: Build) -> None:
    """runtime/<arch>/: the TVM runtime of every library's architecture (found before the build,
    from the installed wheels or the setup-time cache), and runtime/include/: tvm-ffi's headers."""
    from kdcc.targets.bundle.runtime_libs import ffi_include_dir, runtime_versions

    b.runtime_record = {"versions": runtime_versions()}
    for arch in sorted({lib.arch for lib in b.libraries}):
        found = b.runtime[arch]
        for name, path in sorted(found.items()):
            b.files[f"runtime/{arch}/{name}"] = path.read_bytes()
        b.runtime_record[arch] = sorted(found)
    include = ffi_include_dir()
    for sub in ("tvm/ffi", "dlpack"):
        for path in sorted((include / sub).rglob("*")):
            if path.is_file():
                b.files[f"runtime/include/{path.relative_to(include).as_posix()}"] = path.read_bytes()


def write_sources(b: Build) -> None:
    """include/, src/ (the team's, each robot's and the monitor's C API) and the CMake package with
    a target per per-robot library built, from the templates; the wrappers carry every library's
    sha256 and refuse to load other bytes."""
    step_libraries = [art.name for art in b.roles]
    digests: dict[str, list[str]] = {}
    for path, data in b.files.items():  # every library built so far: lib/<device>/<name>.so
        if path.startswith("lib/") and path.endswith(".so"):
            digests.setdefault(path.rsplit("/", 1)[1], []).append(_sha256(data))
    for path, text in bundle_sources(b.spec, b.libraries, _sha256(b.student_onnx), step_libraries,
                                     digests).items():
        b.files[path] = text.encode()


def _weights_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float64 if tensor.is_floating_point() else torch.int64).numpy().tobytes())
    return h.hexdigest()


def write_profile(b: Build) -> None:
    """profile.json: the collaboration profile (what the team needs to run), with hashes of what made it."""
    hashes = {"student.onnx": _sha256(b.student_onnx), "student_weights": _weights_sha256(b.module),
              "inputs": {str(p): _sha256(Path(p).read_bytes()) for p in b.inputs}}
    student = {"weights_sha256": hashes["student_weights"], "onnx_sha256": hashes["student.onnx"]}
    robots = [robot_entry(b.spec, art, b.robot_costs.get(art.name), student, b.certified) for art in b.roles]
    libraries = [{**lib.record(b.work), "direct": b.direct[lib.device]} for lib in b.libraries]
    doc = collaboration_profile(b.spec, b.profile, libraries, b.runtime_record,
                                b.verification, hashes, b.meta, robots)
    b.files["profile.json"] = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def write_depfile(b: Build) -> None:
    """policy.d in Make syntax (Ninja reads it too): the bundle's profile.json depends on every input."""
    def esc(p: Path) -> str:
        return str(p).replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")

    target = esc(b.out_dir / "profile.json")
    deps = " \\\n  ".join(esc(p) for p in b.inputs)
    b.files["policy.d"] = (f"{target}: {deps}\n" if b.inputs else f"{target}:\n").encode()


def add_extra_files(b: Build) -> None:
    """The compile's files beside the build's (report.md, report.html, record/, pareto.json): none may replace
    one of the bundle's own or sit where one of its directories is."""
    from kdcc.core.errors import KdccError

    for rel, data in sorted(b.extra_files.items()):
        if rel in b.files or rel in (MANIFEST, SIGNATURE) or any(
                p.startswith(rel + "/") or rel.startswith(p + "/") for p in b.files):
            raise KdccError(f"bundle: extra file {rel!r} clashes with the bundle layout or leaves it")
        b.files[rel] = data
    b.files = dict(sorted(b.files.items()))


def write_manifest(b: Build) -> None:
    """manifest.json: every file above with its sha256 and size, checked by whatever opens the bundle to run it."""
    b.files[MANIFEST] = manifest_bytes(b.files)


def sign(b: Build) -> None:
    """kdcc.sig, when a key was given: the files (manifest.json included) signed with model-signing, in a scratch
    copy, so the bundle is published signed or not at all."""
    if b.sign_key is None:
        return
    from kdcc.targets.bundle.signing import sign_tree

    b.files[SIGNATURE] = sign_tree(b.files, b.sign_key, b.work / ".sign")


STAGES: tuple[Stage, ...] = (
    Stage("lower", lower),                              # team step -> Relax
    Stage("onnx", export_onnx),                         # student.onnx
    Stage("build", build_devices),                      # lib/<device>/: one TVM build per device (+ VM-free)
    Stage("verification-host-build", build_verification_host),  # a second TVM build when none runs here
    Stage("verify", verify),                            # torch == ONNX Runtime == TVM host, over an episode
    Stage("roles", build_roles),                        # lib/<device>/<role>.so: what each robot runs
    Stage("monitor", build_monitor),                    # lib/<device>/monitor.so: Q_tot for a station
    Stage("runtime-libs", copy_runtime),                # runtime/<arch>/, runtime/include/
    Stage("sources", write_sources),                    # include/, src/, CMakeLists.txt, CMake package
    Stage("collaboration-profile", write_profile),      # profile.json
    Stage("depfile", write_depfile),                    # policy.d
    Stage("extra-files", add_extra_files),              # report.md, report.html, record/: the compile's own
    Stage("manifest", write_manifest),                  # manifest.json: every file's sha256 and size
    Stage("sign", sign),                                # kdcc.sig (with --sign-key only)
)
