"""What one robot runs, costed: per role and device, one agent step's FLOPs, bytes, latency and energy.

The team step's cost (every agent, input construction, the mixer) is what a
simulator or a central station pays; a robot pays only its own agent step. The
same annotator and roofline model cost both, so the two can be compared.
"""

from __future__ import annotations

from typing import Any

from kdcc.ir.agent_step import agent_example_inputs
from kdcc.ir.annotate import annotate, graph_costs
from kdcc.ir.printer import team_ops
from kdcc.ir.program import Program
from kdcc.ir.roles import team_roles
from kdcc.marl.agents import agent_steps
from kdcc.targets.cost_model import at_precision, choose_device, estimate, runs_direct, step_cost
from kdcc.targets.profile import TargetProfile

__all__ = ["robot_costs", "scoped_cost", "precision_costs", "vm_estimate"]


def _role_ops(program: Program) -> list[list]:
    steps = agent_steps(program)
    return [graph_costs(annotate(steps[r.name], *agent_example_inputs(program.spec, r)))
            for r in team_roles(program.spec)]


def scoped_cost(program: Program, profile: TargetProfile, scope: str, device=None):
    """(cost, device) a budget of `scope` is checked against: the team step's, or the most a robot pays
    (per metric, the largest over the roles), on `device` or the one the cost model recommends."""
    if scope == "team":
        return step_cost(team_ops(program), profile, device)
    roles = _role_ops(program)
    if device is None:
        device = step_cost(max(roles, key=lambda ops: sum(c.flops for _, c in ops)), profile)[1]
    costs = [step_cost(ops, profile, device)[0] for ops in roles]
    return {k: max(c[k] for c in costs) for k in costs[0]}, device


def robot_costs(program: Program, profile: TargetProfile) -> dict[str, dict[str, Any]]:
    """role name -> {agents, flops, bytes, param_bytes, device (recommended), per device: latency_us, energy_uj}."""
    steps = agent_steps(program)
    out: dict[str, dict[str, Any]] = {}
    for role in team_roles(program.spec):
        gm = steps[role.name]
        ops = graph_costs(annotate(gm, *agent_example_inputs(program.spec, role)))
        best, _ = choose_device(ops, profile)
        params = sum(p.numel() for p in gm.parameters()) + sum(b.numel() for b in gm.buffers()
                                                                 if b.is_floating_point())
        entry: dict[str, Any] = {"agents": list(role.agents), "flops": sum(c.flops for _, c in ops),
                                 "bytes": sum(c.bytes for _, c in ops), "param_bytes": 4 * params,
                                 "device": best.name, "devices": {}}
        for device in profile.devices:
            total = estimate(ops, device).total
            entry["devices"][device.name] = {"latency_us": round(total.latency_us, 4),
                                             "energy_uj": round(total.energy_uj, 6),
                                             **vm_estimate(ops, device)}
        out[role.name] = entry
    return out


def vm_estimate(ops, device) -> dict[str, float]:
    """{"vm_latency_us": ...} where a step is priced as the VM-free library but also ships as a Relax VM
    library (what `kdcc measure` times through TVM RPC), so a measurement compares with its own runtime."""
    if not runs_direct(device):
        return {}
    return {"vm_latency_us": round(estimate(ops, device, runtime="vm").total.latency_us, 4)}


def precision_costs(program: Program, profile: TargetProfile, precisions) -> dict[str, dict[str, Any]]:
    """precision -> {weight_bytes (one robot's largest role), per device: latency_us, energy_uj (the largest
    role's)}: what each precision would cost a robot on every device of the target."""
    roles = _role_ops(program)
    out: dict[str, dict[str, Any]] = {}
    for p in precisions:
        ops = [at_precision(r, p) for r in roles]
        entry: dict[str, Any] = {"weight_bytes": max(sum(c.param_bytes for _, c in r) for r in ops), "devices": {}}
        for device in profile.devices:
            totals = [estimate(r, device, p).total for r in ops] if p in device.peak_gflops else []
            if totals:
                entry["devices"][device.name] = {"latency_us": round(max(t.latency_us for t in totals), 4),
                                                 "energy_uj": round(max(t.energy_uj for t in totals), 6)}
        out[p] = entry
    return out
