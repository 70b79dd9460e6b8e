"""Per-robot libraries: every role's agent step, and the team monitor, for every device.

A robot runs one role: `lib/<device>/<role>.so` (a Relax VM library like the team's
`policy.so`) takes that agent's own observation, its last action and its hidden state
(and, for a network several agents share, the agent index) and returns its greedy
action, its Q-values and its next hidden state: nothing from other agents, no global
state. `lib/<device>/monitor.so` is the mixer approximation alone (Q_tot from each
agent's chosen Q and the state), for a central station that wants the team value.
Each graph is also written as ONNX (`agents/<role>.onnx`, `agents/monitor.onnx`) and
verified like the team step: torch, ONNX Runtime and a host build agree.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from kdcc.ir.agent_step import AGENT_INPUTS, AGENT_OUTPUTS, MONITOR_INPUTS, agent_example_inputs, monitor_example_inputs
from kdcc.ir.roles import Role
from kdcc.targets.bundle.direct_stages import add_direct, verify_direct

__all__ = ["RoleArtifact", "build_step_libraries", "role_signature", "monitor_signature", "VERIFY_INPUTS"]

VERIFY_INPUTS = 4  # example inputs each per-robot library is checked on


@dataclass
class RoleArtifact:
    """One per-robot graph once built: its libraries per device, and how it was checked."""

    name: str  # role name, or "monitor"
    libraries: dict[str, dict[str, Any]]  # device -> {path, bytes, sha256}
    onnx: str
    verification: dict[str, Any]


def role_signature(spec, role: Role):
    from kdcc.targets.tvm.lowering import Signature

    names = AGENT_INPUTS if role.shared else AGENT_INPUTS[:3]
    return Signature(f"agent step of role {role.name}", agent_example_inputs(spec, role), names, AGENT_OUTPUTS)


def monitor_signature(spec):
    from kdcc.targets.tvm.lowering import Signature

    return Signature("team monitor", monitor_example_inputs(spec), MONITOR_INPUTS, ("q_tot",))


def _host_library(b, relax_mod, name: str, built: dict[str, Any]):
    """The bundle's own CPU library when it runs here, else a throwaway build for this CPU (not shipped)."""
    from kdcc.targets.tvm.build import build_library

    here = next((built[lib.device] for lib in b.libraries if lib.arch == platform.machine() and lib.kind == "cpu"),
                None)
    if here is not None:
        return here
    probe = replace(b.profile.devices[0], name="verify", kind="cpu", tvm_host=None, cross_triple=None,
                    tvm_target={"kind": "llvm", "mcpu": "native"})
    return build_library(relax_mod, probe, b.profile, b.work / ".verify" / f"{name}.so", b.work / ".work")


def build_step_libraries(b, name: str, module: nn.Module, sig, inputs: list[tuple]) -> RoleArtifact:
    """Lower `module`, build it for every device of the target, write its ONNX, verify it."""
    from kdcc.targets.onnx_precision import onnx_at_precision
    from kdcc.targets.tvm.build import build_library
    from kdcc.targets.tvm.lowering import onnx_bytes, to_relax
    from kdcc.targets.tvm.precision import apply_precision
    from kdcc.targets.tvm.precision_check import check_precision
    from kdcc.targets.tvm.verify import verify_step

    samples = b.calibration.get(name, ())
    relax_mod = apply_precision(to_relax(module, sig), b.precision, samples)
    onnx = onnx_at_precision(onnx_bytes(module, sig), b.precision, sig.input_names, samples)
    b.files[f"agents/{name}.onnx"] = onnx
    built: dict[str, Any] = {}  # device -> BuiltLibrary
    libraries: dict[str, dict[str, Any]] = {}
    for device in b.profile.devices:
        lib = build_library(relax_mod, device, b.profile, b.work / "lib" / device.name / f"{name}.so", b.work / ".work")
        data = lib.path.read_bytes()
        rel = f"lib/{device.name}/{name}.so"
        b.files[rel] = data
        built[device.name] = lib
        libraries[device.name] = {"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                  "direct": add_direct(b, lib, name), **lib.schedule_record()}
    host = _host_library(b, relax_mod, name, built)
    verification = (verify_step(module, sig, onnx, host.path, inputs) if b.precision == "fp32"
                    else check_precision(module, sig, onnx, host.path, samples, b.precision))
    verification["direct"] = verify_direct(b, host, name, [tuple(x.numpy() for x in args) for args in inputs])
    return RoleArtifact(name, libraries, f"agents/{name}.onnx", verification)
