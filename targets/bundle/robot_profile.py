"""One entry of profile.json's `robots`: what a role is, what it needs and what it costs, for the one who deploys it.

Format version 2 (docs/profile-format.md, docs/profile.schema.json) states each role's contract
in structured fields a fleet tool can check without reading kdcc's code:

    observation        the size each of its agents reads (its real size, and the padded size the
                       graph takes), dtype and layout
    actions            how many, and what an action is (an index into the environment's action set)
    needs_from_others  what it must receive from other robots per step: nothing (decentralised
                       execution); the monitor lists what a station gathers
    trained_for        the team it was trained in: size, which role each agent index runs, the
                       environment, and the digests of the student, so roles from different
                       compiles are not mixed into one team (`kdcc team-check`)
    envelope           per step and device, estimated by the cost model: latency, energy, memory
                       (the library's size and the cost model's bytes)
    certified_eps      where the compile certified it: the distribution of the certified ε of the
                       role's agent steps on probe episodes (median, 10th percentile, fraction
                       certified at a few radii), the student's beside the teacher's on the same agents

The free-text fields of version 1 (`needs_at_run_time`, `obs_dim`, ...) stay for readers of it.
"""

from __future__ import annotations

from typing import Any

from kdcc.ir.roles import team_roles
from kdcc.ir.spec import MarlSpec

__all__ = ["robot_entry", "trained_for"]


def trained_for(spec: MarlSpec, student: dict[str, str]) -> dict[str, Any]:
    """The team a role belongs to: every agent index and the role it runs, the environment, the student's digests."""
    composition = [next(r.name for r in team_roles(spec) if i in r.agents) for i in range(spec.n_agents)]
    return {"n_agents": spec.n_agents, "composition": composition, "algorithm": spec.algorithm,
            "env": {"id": spec.env.id, "kwargs": dict(spec.env.kwargs)}, "student": dict(student)}


def _envelope(libraries: dict[str, dict[str, Any]], cost: dict[str, Any] | None) -> dict[str, Any]:
    """Per device: the cost model's latency and energy of one step (absent for the monitor, which it does not
    cost) and the memory it takes: the library's bytes and the bytes the cost model counts moved per step."""
    per_device = {}
    for device, lib in sorted(libraries.items()):
        entry: dict[str, Any] = {"memory": {"library_bytes": lib["bytes"]}}
        direct = lib.get("direct", {})
        if "bytes" in direct:  # what a robot installs by default: the VM-free library alone
            entry["memory"].update(vm_free_library_bytes=direct["bytes"], working_bytes=direct["storage_bytes"])
        if cost is not None:
            entry.update(cost["devices"].get(device, {}))
            entry["memory"].update(model_bytes=cost["bytes"], param_bytes=cost["param_bytes"])
        per_device[device] = entry
    return {"estimated": True, "source": "kdcc cost model (roofline per kernel, target profile)"
            if cost is not None else "library sizes only (the cost model does not cost the monitor)",
            "per_step": per_device, **({"recommended_device": cost["device"]} if cost is not None else {})}


def _monitor(spec: MarlSpec) -> dict[str, Any]:
    return {"role": "monitor", "runs_on": "a central station (optional: not needed to act)",
            "needs_at_run_time": ["every agent's chosen Q-value", "the global state"], "produces": ["q_tot"],
            "agents": [],
            "observation": {"inputs": [{"name": "chosen_q", "size": spec.n_agents, "dtype": "float32",
                                        "layout": "each agent's Q-value of its chosen action, by agent index"},
                                       {"name": "state", "size": spec.state_dim, "dtype": "float32",
                                        "layout": "the environment's global state"}]},
            "needs_from_others": ["every agent's chosen Q-value, each step"]}


def _agent_role(spec: MarlSpec, name: str) -> dict[str, Any]:
    role = next(r for r in team_roles(spec) if r.name == name)
    needs = ["its own observation"] + (["its agent index, fixed at create"] if role.shared else [])
    sizes = {i: spec.obs_size(i) for i in role.agents}
    return {"role": role.name, "agents": list(role.agents), "runs_on": "each robot of these agents",
            "needs_at_run_time": needs, "keeps_inside": ["hidden state", "its own last action"],
            "obs_dim": role.obs_dim, "n_actions": role.n_actions, "hidden_dim": role.hidden_dim,
            "network": "shared" if role.shared else "own", "produces": ["action", "q"],
            "observation": {"size": {str(i): n for i, n in sizes.items()}, "padded_to": role.obs_dim,
                            "dtype": "float32",
                            "layout": f"the agent's own {spec.env.id} observation vector, in the environment's "
                                      "order; a shorter one is zero-padded to padded_to"},
            "actions": {"count": {str(i): spec.action_size(i) for i in role.agents}, "padded_to": role.n_actions,
                        "meaning": "index into the agent's discrete action set of the environment; the greedy "
                                   "argmax of q over the agent's own actions"},
            "needs_from_others": []}


def _certified_eps(certified: dict[str, Any], role: str) -> dict[str, Any]:
    """The role's robustness envelope: its certified ε distribution, the student's and the teacher's."""
    row = certified["roles"][role]
    return {"method": certified["method"], "eps_scale": certified["eps_scale"], "episodes": certified["episodes"],
            "student": row["student"], "teacher": row["teacher"]}


def robot_entry(spec: MarlSpec, art, cost: dict[str, Any] | None, student: dict[str, str],
                certified: dict[str, Any] | None = None) -> dict[str, Any]:
    """profile.json's entry for one built role (`art`: a role_stages.RoleArtifact) or the monitor;
    `certified`: the compile's certify stage (kdcc.flow.certify_compile), None when it did not run."""
    entry = _monitor(spec) if art.name == "monitor" else _agent_role(spec, art.name)
    entry.update(libraries=art.libraries, onnx=art.onnx, verification=art.verification,
                 trained_for=trained_for(spec, student), envelope=_envelope(art.libraries, cost))
    if cost is not None:
        entry["cost"] = cost
    if certified is not None and art.name in certified["roles"]:
        entry["certified_eps"] = _certified_eps(certified, art.name)
    return entry
