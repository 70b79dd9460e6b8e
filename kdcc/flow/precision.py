"""`compile --precision`: each precision's fidelity and cost, and which precision `auto` takes.

For every precision considered (fp32 and the one asked for; all three for `auto`) the team step is built
for this CPU at that precision (the same lowering and `apply_precision` hook as the bundle) and checked
like a lossy pass, against the fp32 student:

- action agreement: the library replayed along the probe's teacher trajectories (its own hidden state
  carried), greedy actions compared step by step with the fp32 torch student's;
- normalised score on the selection seeds (kdcc.marl.scoring: never used in training), paired with the
  teacher's and the fp32 student's returns on the same seeds: score = (R − R_random)/(R_teacher − R_random),
  and delta = mean(R_p − R_fp32)/(R_teacher − R_random) with its standard error.

A teacher no better than random (an untrained one) gives no score: score and delta are None, and
agreement alone decides. The rule `auto` applies (`acceptable`, `choose_precision`): a precision keeps fp32's fidelity when its
action agreement is ≥ AUTO_AGREEMENT and delta ≥ −max(SCORE_TOLERANCE, SE of delta); of those, the
fastest: measured (the team step from Python, `host_step_us`) when the target's recommended device is
this machine's CPU, else the cost model's per-robot estimate on that device (the profile's peak per
precision); ties go to the higher precision. fp32 is always acceptable. Measured where possible because
the estimate takes each precision at the device's peak, which a step may not reach: on x86 the fp16
step converts every op and the int8 matmuls go through TVM's default schedule (kdcc's SIMD matmul
schedule is float-only), so both run slower here than fp32.
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.marl.worlds import make_env
from kdcc.marl.probe import make_probe
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.marl.scoring import baseline
from kdcc.marl.seeds import COLLECT, SELECTION
from kdcc.targets.tvm.precision import PRECISIONS

__all__ = ["PRECISIONS", "AUTO_AGREEMENT", "SCORE_TOLERANCE", "acceptable", "choose_precision",
           "precision_study"]

AUTO_AGREEMENT = 0.95
SCORE_TOLERANCE = 0.02


def acceptable(point: dict[str, Any]) -> bool:
    """Does a precision keep the fp32 student's fidelity? (module docstring)"""
    if point["precision"] == "fp32":
        return True
    if point["action_agreement"] < AUTO_AGREEMENT:
        return False
    return point["delta"] is None or point["delta"] >= -max(SCORE_TOLERANCE, point["delta_se"])


def choose_precision(points: Sequence[dict[str, Any]], device: str, measured: bool = False) -> dict[str, Any]:
    """The acceptable point with the lowest latency: measured here (`host_step_us`) when the target's device is
    this machine's CPU, else estimated on `device`; ties to the higher precision."""
    order = {p: i for i, p in enumerate(PRECISIONS)}
    kept = [p for p in points if acceptable(p)]
    if not kept:
        raise KdccError("precision auto: no precision was measured acceptable (fp32 must be among the points)")
    return min(kept, key=lambda p: (p["host_step_us"] if measured else p["latency_us"][device], order[p["precision"]]))


def _step_us(policy, spec, rounds: int = 5, calls: int = 2000) -> float:
    """Median µs of one team step from Python (HostPolicy.step), as `kdcc eval` and a control loop call it."""
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((spec.n_agents, spec.obs_dim)).astype(np.float32)
    last, state = np.zeros(spec.n_agents, np.int64), rng.standard_normal(spec.state_dim).astype(np.float32)
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            policy.step(obs, last, state)
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return round(float(np.median(runs)), 3)


class _Library:
    """A host team-step library as an MPE policy (the hidden state carried, as the C API does)."""

    def __init__(self, path: Path, spec):
        from kdcc.targets.tvm.runtime import HostPolicy

        self.policy = HostPolicy(path, spec)

    def reset(self) -> None:
        self.policy.reset()

    def step(self, obs, last_actions, state):
        return self.policy.step(obs, last_actions, state)[0]


def _agreement(policy, reference, probe) -> float:
    agree = []
    for e in range(probe.obs.shape[0]):
        policy.reset()
        reference.reset()
        for t in range(probe.obs.shape[1]):
            args = (probe.obs[e, t], probe.last_actions[e, t], probe.state[e, t])
            agree.append(np.mean(policy.step(*args) == reference.step(*args)))
    return float(np.mean(agree))


def _host_build(program, precision: str, samples, work: Path) -> Path:
    from dataclasses import replace

    from kdcc.targets.profile import load_profile
    from kdcc.targets.tvm.build import build_library
    from kdcc.targets.tvm.lowering import to_relax
    from kdcc.targets.tvm.precision import apply_precision

    profile = load_profile("host")
    device = replace(profile.devices[0], name=precision)
    mod = apply_precision(to_relax(program.team_module(), program.spec), precision, samples)
    return build_library(mod, device, profile, work / f"{precision}.so", work / ".work").path


def _delta(returns: np.ndarray, fp32: np.ndarray, gap: float) -> tuple[float, float]:
    d = returns - fp32
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(np.mean(d) / gap), se / gap


def precision_study(result, precisions: Sequence[str], samples, episodes: int, work: Path) -> list[dict[str, Any]]:
    """One point per precision: fidelity against the fp32 student, estimated cost per device, host library size."""
    from kdcc.targets.robot_cost import precision_costs

    program, spec, teacher = result.program, result.program.spec, result.teacher
    env = make_env(spec.env)
    reference = TorchPolicy(spec, program.team_module().eval())
    probe = make_probe(teacher)
    first = SELECTION.first(episodes)
    base = baseline(teacher, first, episodes, env)
    random_mean = base.random_mean
    gap = base.teacher_mean - random_mean  # a teacher no better than random gives no score (None)
    costs = precision_costs(program, result.profile, precisions)
    points, fp32_r, policies = [], None, []
    for p in ["fp32", *[q for q in precisions if q != "fp32"]]:
        started = time.perf_counter()
        path = _host_build(program, p, samples, work)
        policy = _Library(path, spec)
        policies.append(policy.policy)
        returns = run_episodes(env, policy, episodes, first).returns
        fp32_r = returns if p == "fp32" else fp32_r
        scored = gap > 0
        delta, delta_se = _delta(returns, fp32_r, gap) if scored else (None, None)
        points.append({"precision": p, "action_agreement": round(_agreement(policy, reference, probe), 6),
                       "score": round((float(np.mean(returns)) - random_mean) / gap, 6) if scored else None,
                       "delta": None if delta is None else round(delta, 6),
                       "delta_se": None if delta_se is None else round(delta_se, 6), "episodes": episodes,
                       "host_library_bytes": path.stat().st_size, "weight_bytes": costs[p]["weight_bytes"],
                       "latency_us": {d: c["latency_us"] for d, c in costs[p]["devices"].items()},
                       "seconds": round(time.perf_counter() - started, 2)})
    for point, policy in zip(points, policies):  # timed one after another, once every library is built
        point["host_step_us"] = _step_us(policy, spec)
    return points


RULE = (f"auto takes the precision with the lowest latency (measured, when the target is this machine's CPU; "
        f"else the cost model's estimate) whose action agreement with the fp32 "
        f"student is ≥ {AUTO_AGREEMENT:.0%} and whose normalised score is at most max({SCORE_TOLERANCE}, 1 SE) "
        f"below fp32's (paired on the same seeds); ties go to the higher precision.")


def check_precision_option(precision: str) -> None:
    if precision not in (*PRECISIONS, "auto"):
        raise KdccError(f"--precision {precision}: expected one of {', '.join((*PRECISIONS, 'auto'))}")


def decide_precision(result, requested: str, episodes: int) -> tuple[dict[str, Any] | None, dict[str, list]]:
    """(the precision record for the report and profile.json, calibration samples per step graph); (None, {})
    at fp32, which builds exactly as before."""
    import tempfile

    from kdcc.flow.calibration import calibration_samples
    from kdcc.flow.collect import collect_dataset
    from kdcc.marl.agents import agent_steps
    from kdcc.targets.tvm.build import device_arch

    check_precision_option(requested)
    if requested == "fp32":
        return None, {}
    dataset = result.ctx.dataset
    if dataset is None:  # no pass trained on teacher data: collect a little for calibration
        dataset = collect_dataset(result.teacher, result.inputs.teacher_path.name, episodes=4,
                                  seed=COLLECT.first(4))
    samples = calibration_samples(result.program, dataset, agent_steps(result.program))
    candidates = PRECISIONS if requested == "auto" else ("fp32", requested)
    with tempfile.TemporaryDirectory(prefix="kdcc-precision-") as tmp:
        points = precision_study(result, candidates, samples["policy"], episodes, Path(tmp))
    device = next(iter(result.robot_costs.values()))["device"]
    profile_device = result.profile.device(device)
    measured = profile_device.kind == "cpu" and device_arch(profile_device) == platform.machine()
    chosen = choose_precision(points, device, measured)["precision"] if requested == "auto" else requested
    decision = {"requested": requested, "chosen": chosen, "device": device, "rule": RULE, "points": points,
                "latency_basis": "measured here (team step from Python)" if measured else f"cost model ({device})"}
    return decision, samples
