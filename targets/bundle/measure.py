"""`kdcc measure`: time every library of a bundle on its device and record it beside the estimate.

For each device of the bundle, the team step (`lib/<device>/policy.so`), each role's agent step
and the monitor are run on the example inputs the bundle was verified with (the same shapes a
robot feeds), a warm-up, then N timed calls one by one on the device (`rpc.Timer`). The median
and the 99th percentile go into profile.json as `"measured"`, next to the cost model's estimate,
so the two can be compared where they disagree. profile.json is rewritten atomically.

Where: through RPC when `remote` is given; else here, which only makes sense when the bundle's
libraries are built for this machine (an orin bundle is aarch64: a one-line error says which
options to pass). On a Jetson, `power` adds energy per step from the INA3221 rails
(`jetson_power`), sampled over a ≥ 1 s window of calls run apart from the latency samples.
"""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes, read_json_object
from kdcc.core.progress import note
from kdcc.ir.spec import MarlSpec
from kdcc.targets.bundle.integrity import check_bundle, update_manifest
from kdcc.targets.tvm.rpc import Remote

__all__ = ["measure_bundle", "LOCAL_ERROR"]

LOCAL_ERROR = ("{bundle}: its libraries are built for {arch} and this machine is {here}: measure on the device "
               "with --rpc-tracker HOST:PORT --rpc-key KEY (or --rpc HOST:PORT)")
POWER_WINDOW_MS = 1000


def _steps(bundle: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every library of the bundle: what it is, where it runs, its inputs and its estimate, and the
    JSON object of profile.json its measurement goes into."""
    from kdcc.ir.agent_step import agent_example_inputs, monitor_example_inputs
    from kdcc.ir.roles import team_roles
    from kdcc.ir.team import team_example_inputs

    spec = MarlSpec.from_dict(doc["spec"])
    arch = {lib["device"]: lib["arch"] for lib in doc["libraries"]}
    kinds = {lib["device"]: lib["kind"] for lib in doc["libraries"]}
    roles = {r.name: r for r in team_roles(spec)}
    steps = []
    for lib in doc["libraries"]:
        cost = doc.get("cost", {})  # the library timed here runs in the Relax VM: its estimate is the VM's
        est = cost.get(f"vm_latency_us.{lib['device']}", cost.get(f"latency_us.{lib['device']}"))
        steps.append({"name": "team", "device": lib["device"], "kind": lib["kind"], "arch": lib["arch"],
                      "path": bundle / lib["path"], "inputs": team_example_inputs(spec), "estimate_us": est,
                      "into": lib, "key": "measured"})
    for robot in doc.get("robots", []):
        name = robot["role"]
        inputs = monitor_example_inputs(spec) if name == "monitor" else agent_example_inputs(spec, roles[name])
        for device, entry in robot.get("libraries", {}).items():
            priced = robot.get("cost", {}).get("devices", {}).get(device, {})
            est = priced.get("vm_latency_us", priced.get("latency_us"))
            steps.append({"name": name, "device": device, "kind": kinds.get(device, "cpu"), "arch": arch.get(device),
                          "path": bundle / entry["path"], "inputs": inputs, "estimate_us": est,
                          "into": robot.setdefault("measured", {}), "key": device})
    return steps


def _summary(seconds: np.ndarray, how: str, estimate: float | None) -> dict[str, Any]:
    us = seconds * 1e6
    out = {"median_us": round(float(np.median(us)), 3), "p99_us": round(float(np.percentile(us, 99)), 3),
           "calls": int(us.size), "how": how, "date": datetime.date.today().isoformat()}
    if estimate is not None:
        out["estimate_us"] = estimate
    return out


def _check_local(bundle: Path, steps: list[dict[str, Any]]) -> None:
    here = platform.machine()
    if not any(s["kind"] == "cpu" and s["arch"] == here for s in steps):
        archs = ", ".join(sorted({str(s["arch"]) for s in steps})) or "no known machine"
        raise KdccError(LOCAL_ERROR.format(bundle=bundle, arch=archs, here=here))


def measure_bundle(bundle: str | Path, remote: Remote | None = None, repeat: int = 1000, power: bool | None = None,
                   sysfs_root: Path | None = None) -> list[dict[str, Any]]:
    """Measure every library that runs on the chosen device; write profile.json; return the rows.

    `power`: None = on when measuring here and the INA3221 sysfs tree exists; True = required."""
    import os

    from kdcc.targets.tvm import jetson_power
    from kdcc.targets.tvm.rpc import open_timer

    if repeat < 10:
        raise KdccError(f"--repeat must be at least 10 (a median and a 99th percentile), got {repeat}")
    bundle = Path(bundle)
    check_bundle(bundle)  # measure what was compiled, nothing else
    doc = read_json_object(bundle / "profile.json", "bundle profile")
    if "libraries" not in doc or "spec" not in doc:
        raise KdccError(f"{bundle / 'profile.json'}: not a kdcc bundle profile (no libraries or spec)")
    steps = _steps(bundle, doc)
    if remote is None:
        _check_local(bundle, steps)
    rails = jetson_power.find_rails(sysfs_root or jetson_power.SYSFS_ROOT) if remote is None and power is not False else []
    if power and remote is not None:
        raise KdccError("--power reads this machine's INA3221 rails: run kdcc measure on the board, without RPC")
    if power and not rails:
        raise KdccError(f"--power: no INA3221 rails under {sysfs_root or jetson_power.SYSFS_ROOT} (not a Jetson?)")
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    timer = open_timer(remote)
    rows = []
    for step in steps:
        row = {k: step[k] for k in ("name", "device", "estimate_us")}
        if remote is None and step["kind"] == "cpu" and step["arch"] != platform.machine():
            rows.append({**row, "skipped": f"built for {step['arch']}"})
            continue
        if not timer.has_device(step["kind"]):
            rows.append({**row, "skipped": f"no {step['kind']} device on {timer.how}"})
            continue
        result = _summary(timer.sample(step["path"], step["kind"], step["inputs"], repeat), timer.how,
                          step["estimate_us"])
        if rails:
            with jetson_power.PowerSampler(rails) as sampler:
                mean_s = timer.mean_call_s(step["path"], step["kind"], step["inputs"], POWER_WINDOW_MS)
            result["power"] = sampler.per_step(max(int(sampler.seconds / mean_s), 1))
        step["into"][step["key"]] = result
        rows.append({**row, **result})
    if not any("median_us" in r for r in rows):
        raise KdccError(f"{bundle}: no library of this bundle runs on {timer.how}")
    atomic_write_bytes(bundle / "profile.json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    if update_manifest(bundle, "profile.json"):
        note(f"{bundle}: profile.json now holds the measurements, so its signature no longer matches: "
             f"sign it again (kdcc sign {bundle} --key KEY.pem)")
    return rows
