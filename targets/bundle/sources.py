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

What one robot runs has its own API, `kdcc_agent.h`: `kdcc_agent.cc` loads the role library
of one agent (`lib/<device>/<role>.so`) and keeps that agent's hidden state and last action
inside; the team's role table (agent index -> role, own sizes, the role graph's sizes) is
generated into it from the spec. CMake builds it once per role, `kdcc_policy::<role>`, so a
robot's firmware links only its own role; `kdcc_monitor.h` (`kdcc_policy::monitor`) is the
station's Q_tot. `src/kdcc_vm.h` is what the three wrappers share.

The team and role targets default to the VM-free libraries instead (`lib/<device>/<name>.direct.so`,
through `kdcc_policy_direct.cc` / `kdcc_agent_direct.cc` and `kdcc_direct.h`: the step's kernels
called from generated C, no TVM runtime to install); `-DKDCC_POLICY_RUNTIME=vm` keeps the Relax VM.
`kdcc_agents.h` (the role table) and `kdcc_integrity.h` (SHA-256 at load) are shared.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Sequence

import kdcc
from kdcc.ir.roles import role_of
from kdcc.ir.spec import MarlSpec
from kdcc.targets.bundle.collab_profile import output_meanings

__all__ = ["TEMPLATES", "render", "bundle_sources"]

# bundle path -> template (in kdcc/targets/bundle/templates/)
TEMPLATES = {
    "include/kdcc_policy.h": "kdcc_policy.h.in",
    "src/kdcc_policy.cc": "kdcc_policy.cc.in",
    "src/kdcc_policy_direct.cc": "kdcc_policy_direct.cc.in",
    "src/kdcc_direct.h": "kdcc_direct.h.in",
    "include/kdcc_agent.h": "kdcc_agent.h.in",
    "src/kdcc_agent.cc": "kdcc_agent.cc.in",
    "src/kdcc_agent_direct.cc": "kdcc_agent_direct.cc.in",
    "src/kdcc_agents.h": "kdcc_agents.h.in",
    "src/kdcc_integrity.h": "kdcc_integrity.h.in",
    "include/kdcc_monitor.h": "kdcc_monitor.h.in",
    "src/kdcc_monitor.cc": "kdcc_monitor.cc.in",
    "src/kdcc_vm.h": "kdcc_vm.h.in",
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


def _agent_table(spec: MarlSpec) -> tuple[str, str]:
    """The C role table's rows (kdcc_agents.h) and the header's comment lines naming each agent's role."""
    rows, doc = [], []
    for i in range(spec.n_agents):
        r = role_of(spec, i)
        rows.append(f'    {{"{r.name}", {spec.obs_size(i)}, {spec.action_size(i)}, {r.obs_dim}, {r.n_actions}, '
                    f'{r.hidden_dim}, {"true" if r.shared else "false"}}},  // agent {i}')
        network = f"shared by agents {', '.join(map(str, r.agents))}" if r.shared else "its own network"
        doc.append(f" *   agent {i}: lib/<device>/{r.name}.direct.so ({network}, hidden {r.hidden_dim}), "
                   f"obs {spec.obs_size(i)} floats, {spec.action_size(i)} actions")
    return "\n".join(rows), "\n".join(doc)


def _digests(library_digests: dict[str, Sequence[str]]) -> str:
    """C initialisers of (file name, sha256) for every compiled library, sorted (same bytes every build)."""
    rows = [f'    {{"{name}", "{sha}"}},' for name in sorted(library_digests) for sha in sorted(set(library_digests[name]))]
    return "\n".join(rows) or '    {"", ""},'


def bundle_sources(spec: MarlSpec, libraries: Sequence, student_sha256: str,
                   step_libraries: Sequence[str] = (),
                   library_digests: dict[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Bundle path -> text of the C APIs, their C++ wrappers and the CMake package for `libraries`
    (`BuiltLibrary`s, in the profile's device order). `step_libraries` names the per-robot libraries
    the bundle holds (roles, "monitor"): each gets its CMake target. `library_digests` (file name ->
    the sha256 of each device's build) is compiled into the wrappers, which refuse any other bytes."""
    by_arch: dict[str, list[str]] = {}
    for lib in libraries:
        by_arch.setdefault(lib.arch, []).append(lib.device)
    roles = [name for name in step_libraries if name != "monitor"]
    agent_table, agent_doc = _agent_table(spec)
    values = {"version": kdcc.__version__, "n_agents": spec.n_agents, "obs_dim": spec.obs_dim,
              "state_dim": spec.state_dim, "n_actions": spec.n_actions, "hidden_dim": spec.agent.hidden_dim,
              "devices": ",".join(lib.device for lib in libraries), "student_sha256": student_sha256,
              "arch_devices": _arch_devices(by_arch), "agent_table": agent_table, "agent_doc": agent_doc,
              "max_obs_size": max(spec.obs_size(i) for i in range(spec.n_agents)),
              "max_n_actions": max(spec.action_size(i) for i in range(spec.n_agents)),
              "roles": " ".join(roles), "role_list": ", ".join(roles) or "(none in this bundle)",
              "has_monitor": "TRUE" if "monitor" in step_libraries else "FALSE",
              "library_digests": _digests(library_digests or {}), "q_meaning": output_meanings(spec)["q"],
              "q_tot_meaning": output_meanings(spec)["q_tot"]}
    return {path: render(template, **values) for path, template in TEMPLATES.items()}
