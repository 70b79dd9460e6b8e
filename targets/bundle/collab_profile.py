"""profile.json: the collaboration profile of a compiled team, for the people who deploy it.

It answers what a robotics or firmware engineer must know before running the team:
who the agents are (roles), what each one consumes and produces (layouts), how agent
inputs are built, what state persists between steps, what communication execution
needs (none: QMIX agents act on their own observations; the global state feeds only
the mixer's Q_tot, a monitoring value), where to call in, which library serves which
device (and, for GPUs, PTX or cubin), and the hashes that tie it to its inputs.
Plain sorted JSON: the same inputs give the same bytes.
"""

from __future__ import annotations

from typing import Any

import kdcc
from kdcc.core.errors import KdccError
from kdcc.core.numerics import numerics_provenance
from kdcc.ir.spec import MarlSpec
from kdcc.targets.profile import TargetProfile

__all__ = ["FORMAT", "VERSION", "collaboration_profile", "output_meanings"]

FORMAT = "kdcc-bundle"
VERSION = 2  # 2: per role observation, actions, needs_from_others, trained_for, envelope (docs/profile-format.md)


def output_meanings(spec: MarlSpec) -> dict[str, str]:
    """What the `q` and `q_tot` outputs carry for this teacher's algorithm (the interface is the same for all)."""
    if spec.policy == "logits":
        return {"q": f"action logits per agent and action ({spec.algorithm.upper()} actor; greedy = argmax)",
                "q_tot": "sum of the chosen actions' logits (no mixer: a monitoring value, not a team value)"}
    q_tot = {"vdn": "VDN's team value: the sum of the chosen Q",
             "iql": "sum of the chosen Q (IQL has no mixer: a monitoring value)"}
    return {"q": "Q-value per agent and action", "q_tot": q_tot.get(spec.algorithm, "mixer's team value of the actions")}


def _io(spec: MarlSpec) -> dict[str, Any]:
    meaning = output_meanings(spec)
    n, h = spec.n_agents, spec.agent.hidden_dim
    return {
        "inputs": [
            {"name": "obs", "shape": [n, spec.obs_dim], "dtype": "float32", "layout": "agent-major, row i = agent i"},
            {"name": "last_actions", "shape": [n], "dtype": "int64", "layout": "action index per agent, -1 = none yet"},
            {"name": "hidden", "shape": [n, h], "dtype": "float32", "layout": "recurrent state, kept inside the C API"},
            {"name": "state", "shape": [spec.state_dim], "dtype": "float32", "layout": "global state, mixer only"},
        ],
        "outputs": [
            {"name": "actions", "shape": [n], "dtype": "int64", "layout": "greedy action per agent"},
            {"name": "q", "shape": [n, spec.n_actions], "dtype": "float32", "layout": meaning["q"]},
            {"name": "new_hidden", "shape": [n, h], "dtype": "float32", "layout": "next step's hidden"},
            {"name": "q_tot", "shape": [1], "dtype": "float32", "layout": meaning["q_tot"]},
        ],
    }


def _input_construction(spec: MarlSpec) -> dict[str, Any]:
    parts = [{"part": "obs", "width": spec.obs_dim}]
    if spec.obs_last_action:
        parts.append({"part": "one_hot(last_action)", "width": spec.n_actions, "note": "-1 gives all zeros"})
    if spec.obs_agent_id:
        parts.append({"part": "one_hot(agent_id)", "width": spec.n_agents})
    return {"per_agent": parts, "input_dim": spec.input_dim, "built_inside_graph": True}


def _roles(spec: MarlSpec) -> list[dict[str, Any]]:
    """Each agent's network (shared, or its own of its width) and, when agents differ, its own sizes."""
    roles = []
    for i in range(spec.n_agents):
        role: dict[str, Any] = {"agent": i, "role": "agent", "network": "shared"}
        if spec.agent.split:
            role.update(network="own", width=spec.agent.widths[i],
                        reads_input_columns=spec.agent_input_cols(i))
        if spec.heterogeneous:
            role.update(obs_size=spec.obs_size(i), n_actions=spec.action_size(i))
        roles.append(role)
    return roles


def collaboration_profile(spec: MarlSpec, profile: TargetProfile, libraries: list[dict[str, Any]],
                          runtime: dict[str, Any], verification: dict[str, Any], hashes: dict[str, Any],
                          meta: dict[str, Any], robots: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """The profile.json document; `meta` (cost envelope, fidelity, ...) is merged at the top level;
    `robots`: what each robot runs (per role: its libraries, what it needs, its cost), and the monitor."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kdcc_version": kdcc.__version__,
        "numerics": numerics_provenance(),  # what decided the trained weights' bits (kdcc/core/numerics.py)
        "target": {"name": profile.name, "description": profile.description, "jetpack": profile.jetpack,
                   "cuda_version": profile.cuda_version, "devices": [d.name for d in profile.devices]},
        "team": {
            "n_agents": spec.n_agents,
            "roles": _roles(spec) + [{"role": "mixer", "consumes": "state and each agent's chosen Q", "produces": "q_tot"}],
            "communication_at_execution": "none",
            "why_none": "each agent's action depends only on its own observation, last action and hidden "
                        "state; the global state feeds only the mixer's Q_tot",
            "n_actions": spec.n_actions,
        },
        "io": _io(spec),
        "input_construction": _input_construction(spec),
        "hidden_state": {"kind": spec.agent.kind, "size_per_agent": spec.agent.hidden_dim,
                         "reset": "zeros at the start of every episode (kdcc_policy_reset)",
                         **({"used_per_agent": list(spec.agent.widths),
                             "padding": "columns past an agent's width stay zero"} if spec.agent.split else {})},
        "spec": spec.to_dict(),
        **({"algorithm": {"name": spec.algorithm, "outputs": output_meanings(spec)}} if spec.algorithm != "qmix" else {}),
        "entry_points": {
            "c": {"header": "include/kdcc_policy.h", "source": "src/kdcc_policy.cc",
                  "functions": ["kdcc_policy_create", "kdcc_policy_reset", "kdcc_policy_step",
                                "kdcc_policy_destroy", "kdcc_policy_last_error"],
                  "cmake": "find_package(kdcc_policy) or add_subdirectory(<bundle>) -> kdcc_policy::kdcc_policy"},
            "c_agent": {"header": "include/kdcc_agent.h", "source": "src/kdcc_agent.cc",
                        "functions": ["kdcc_agent_create", "kdcc_agent_reset", "kdcc_agent_step",
                                      "kdcc_agent_step_q", "kdcc_agent_destroy", "kdcc_agent_last_error",
                                      "kdcc_monitor_create", "kdcc_monitor_value", "kdcc_monitor_destroy"],
                        "cmake": "kdcc_policy::<role> per role, kdcc_policy::monitor"},
            "tvm": {"function": "main", "vm": "relax", "exec_mode": "compiled"},
            "onnx": "student.onnx",
        },
        "libraries": libraries,
        "robots": list(robots),
        "runtime": runtime,
        "verification": verification,
        "hashes": hashes,
    }
    clash = sorted(set(doc) & set(meta))
    if clash:
        raise KdccError(f"bundle: meta keys {clash} would overwrite kdcc's own profile.json fields")
    return {**doc, **meta}
