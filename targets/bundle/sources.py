"""The C, C++ and CMake files of a bundle, rendered from the package's `templates/*.in`.

The templates are package data (read through `importlib.resources`, so an installed wheel
carries them) and read as plain C/CMake: a value kdcc fills in is written `@name@`, as
CMake's own `configure_file` does, so no brace of C or `${...}` of CMake needs escaping.

`kdcc_policy.cc` is a thin layer over the TVM runtime (tvm-ffi C++ API): load
`lib/<device>/policy.so`, make its Relax VM, fetch `main` once, keep the input tensors
and the agents' hidden state on the device between steps (the new hidden state of one
step is the next step's input, never copied back). The CMake package builds it as the
target `kdcc_policy::kdcc_policy` for the architecture being built for (host or a
cross toolchain's CMAKE_SYSTEM_PROCESSOR), with an RPATH to the bundled runtime.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Sequence

import kdcc
from kdcc.ir.spec import MarlSpec
from kdcc.targets.bundle.collab_profile import output_meanings

__all__ = ["TEMPLATES", "render", "bundle_sources"]

# bundle path -> template (in kdcc/targets/bundle/templates/)
TEMPLATES = {
    "include/kdcc_policy.h": "kdcc_policy.h.in",
    "src/kdcc_policy.cc": "kdcc_policy.cc.in",
    "kdcc_policy.cmake": "kdcc_policy.cmake.in",
    "CMakeLists.txt": "CMakeLists.txt.in",
    "kdcc_policyConfig.cmake": "kdcc_policyConfig.cmake.in",
}
_PLACEHOLDER = re.compile(r"@([a-z_0-9]+)@")


def render(template: str, **values: object) -> str:
    """`template`'s text with every `@name@` replaced by `values[name]`; all must be given."""
    text = (resources.files("kdcc.targets.bundle") / "templates" / template).read_text(encoding="utf-8")
    missing = sorted(set(_PLACEHOLDER.findall(text)) - values.keys())
    if missing:  # a template and this module disagree: a bug in kdcc, not in the user's input
        raise ValueError(f"templates/{template}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m[1]]), text)


def _arch_devices(devices_by_arch: dict[str, list[str]]) -> str:
    """CMake lines naming each architecture's devices (lib/<device>), the first its default."""
    arches = sorted(devices_by_arch)
    lines = [f'set(KDCC_POLICY_DEVICES_{a} "{";".join(devices_by_arch[a])}")' for a in arches]
    return "\n".join(lines + [f'set(KDCC_POLICY_ARCHES "{";".join(arches)}")'])


def bundle_sources(spec: MarlSpec, libraries: Sequence, student_sha256: str) -> dict[str, str]:
    """Bundle path -> text of the C API, its C++ wrapper and the CMake package for `libraries`
    (`BuiltLibrary`s, in the profile's device order)."""
    by_arch: dict[str, list[str]] = {}
    for lib in libraries:
        by_arch.setdefault(lib.arch, []).append(lib.device)
    values = {"version": kdcc.__version__, "n_agents": spec.n_agents, "obs_dim": spec.obs_dim,
              "state_dim": spec.state_dim, "n_actions": spec.n_actions, "hidden_dim": spec.agent.hidden_dim,
              "devices": ",".join(lib.device for lib in libraries), "student_sha256": student_sha256,
              "arch_devices": _arch_devices(by_arch), "q_meaning": output_meanings(spec)["q"],
              "q_tot_meaning": output_meanings(spec)["q_tot"]}
    return {path: render(template, **values) for path, template in TEMPLATES.items()}
