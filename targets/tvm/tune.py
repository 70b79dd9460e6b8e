"""`kdcc compile --tune N`: MetaSchedule tuning of the team step's GEMM kernels, cached.

What is tuned: the PrimFuncs of the team step that hold a matmul (each layer's GEMM with its fused
bias/activation epilogue), as `cpu_pipeline` sees them after fusion (`schedules.fused_passes`), so
the records match what the build schedules. Elementwise kernels, gathers and the argmax keep
kdcc's schedules: they are a small share of a step. One CPU device is tuned: the target's first,
on this machine, or on the board through TVM RPC (`rpc.Remote`, the options of `kdcc measure`).

How: N trials in all (MetaSchedule stops after the round of ceil(N / tasks) per task that reaches
N: `--tune 64` over 10 kernels ran 70), the costliest tasks first, in MetaSchedule's LLVM schedule
space without parallel loops (one thread, as robots run a step); candidates drawn by replaying the
space's traces with random decisions (`replay-trace`; MetaSchedule's evolutionary search ranks
candidates with an XGBoost model, which kdcc does not depend on: with its random model it would
be the same search, slower), built and timed in this process (`ms_harness`).

Cache: `$KDCC_CACHE_DIR/tune/<key>/` (default ~/.cache/kdcc), MetaSchedule's two JSON files and
`tune.json`; key = sha256 of the TVM target and the tuned PrimFuncs' text, so a rebuild of the
same step for the same target reuses the records without a trial, whatever the weights (the
kernels take them as arguments). Asking for more trials than the cache holds runs the difference,
adding to its records. A tuning is written beside the cache entry and renamed into place when complete.

The outcome (`TuneOutcome.record()`, in profile.json as `"tuning"` and in the report) has the
step's latency built with and without the records, timed alternately on the device it was tuned
on, and, when that device is this machine, the largest difference between the two libraries'
outputs on the example inputs (a tuned schedule reorders float sums; beyond 1e-5 is an error).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import math
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.progress import note
from kdcc.targets.profile import DeviceProfile, TargetProfile
from kdcc.targets.tvm.rpc import Remote

__all__ = ["TuneOutcome", "tune_step", "tune_team_step", "open_database", "tuning_device", "TOLERANCE"]

TOLERANCE = 1e-5  # tuned vs untuned outputs: a reordered float sum, nothing more
TIMED_CALLS = 300  # per round; two rounds each, alternating tuned and untuned
GEMM_MARK = "matmul"  # a fused PrimFunc with a GEMM is named fused_matmul..._<epilogue>


@dataclass(frozen=True)
class TuneOutcome:
    device: str
    database: str  # the cache entry's directory
    key: str
    tasks: list[str]
    trials: int  # records in the database
    new_trials: int  # 0 when the cache was reused
    how: str  # "local" | the RPC route
    untuned_us: float
    tuned_us: float
    max_abs_diff: float | None  # None: the tuned device is not this machine
    date: str

    def record(self) -> dict[str, Any]:
        """For profile.json and the report (the cache's path on this machine left out)."""
        out = {k: v for k, v in asdict(self).items() if k != "database"}
        return {**out, "speedup": round(self.untuned_us / self.tuned_us, 3)}


def open_database(path: str | Path):
    """The MetaSchedule JSON database of a cache entry (a context manager: apply it inside)."""
    from tvm.s_tir import meta_schedule as ms

    path = Path(path)
    try:
        return ms.database.JSONDatabase(path_workload=str(path / "database_workload.json"),
                                        path_tuning_record=str(path / "database_tuning_record.json"),
                                        module_equality="structural")
    except Exception as e:  # TVM's parser raises its own error types on a damaged file
        detail = " ".join(str(e).split())[:160]
        raise KdccError(f"{path}: the tuning cache entry is unreadable ({detail}); delete it to tune again") from None


def tuning_device(profile: TargetProfile, remote: Remote | None) -> DeviceProfile:
    """The device tuned: the target's first CPU; refused when it is another machine and no RPC."""
    from kdcc.targets.tvm.build import device_arch

    device = next((d for d in profile.devices if d.kind == "cpu"), None)
    if device is None:
        raise KdccError(f"--tune: target {profile.name} has no CPU device (kdcc tunes CPU kernels only)")
    if remote is None and device_arch(device) != platform.machine():
        raise KdccError(f"--tune: target {profile.name}'s CPU library is {device_arch(device)} and this machine is "
                        f"{platform.machine()}: tune on the device with --rpc-tracker HOST:PORT --rpc-key KEY "
                        "(or --rpc HOST:PORT)")
    return device


def _tasks(relax_mod, target) -> list:
    """The GEMM tasks of the step, extracted after the same passes as `cpu_pipeline`'s."""
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    from kdcc.targets.tvm.schedules.pipeline import fused_passes

    with target:
        fused = tvm.transform.Sequential(fused_passes(target))(relax_mod)
    tasks = [t for t in ms.relax_integration.extract_tasks(fused, target) if GEMM_MARK in t.task_name]
    # the costliest first: with fewer trials than tasks, the small ones are left to kdcc's schedule
    return sorted(tasks, key=lambda t: (-estimate_tir_flops(t.dispatched[0]) * t.weight, t.task_name))


def _key(target, tasks) -> str:
    h = hashlib.sha256(json.dumps(dict(target.export()), sort_keys=True, default=str).encode())
    for task in sorted(tasks, key=lambda t: t.task_name):
        h.update(task.dispatched[0].script().encode())
    return h.hexdigest()[:24]


def _tune(tasks, target, entry: Path, trials: int, timer, arch: str, where: str) -> int:
    """Tune into `entry` (its records kept and added to), atomically; the number of new trials."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from kdcc.targets.tvm.ms_harness import cpu_tensor_intrinsics, make_builder, make_runner, single_thread_space

    staging = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    if entry.is_dir():
        shutil.copytree(entry, staging)
    staging.mkdir(parents=True, exist_ok=True)
    cpu_tensor_intrinsics(arch)
    per_task = math.ceil(trials / len(tasks))
    single = tvm.target.Target({**dict(target.export()), "num-cores": 1})  # robots run one thread
    extracted = [ms.ExtractedTask(t.task_name, t.mod, single, t.dispatched, t.weight) for t in tasks]
    try:
        database = open_database(staging)
        before = len(database)
        # MetaSchedule logs each round to stdout (where --json prints): its log files are kept instead
        with tempfile.TemporaryDirectory(prefix="kdcc-tune-") as work, contextlib.redirect_stdout(io.StringIO()):
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                extracted, work, space=single_thread_space(), strategy="replay-trace", num_threads=1, seed=0)
            ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work, max_trials_global=trials,
                          max_trials_per_task=per_task, num_trials_per_iter=min(per_task, 16),
                          builder=make_builder(Path(work), arch, where), runner=make_runner(timer),
                          database=database, cost_model="random")
            shutil.copytree(Path(work) / "logs", staging / "logs", dirs_exist_ok=True)
        done = len(database) - before
        if done == 0 or len(database.get_all_tuning_records()) == 0:
            raise KdccError(f"{where}: --tune {trials}: no candidate built and ran on {timer.how}")
        (staging / "tune.json").write_text(json.dumps({"target": str(target), "tasks": [t.task_name for t in tasks],
                                                       "trials": len(database)}, indent=2) + "\n")
        old = entry.parent / f".{entry.name}.old-{os.getpid()}"
        if entry.exists():
            entry.rename(old)
        staging.rename(entry)
        shutil.rmtree(old, ignore_errors=True)
        return done
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cached_trials(entry: Path) -> int:
    try:
        return int(json.loads((entry / "tune.json").read_text())["trials"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _compare(timer, untuned: Path, tuned: Path, inputs, local: bool) -> tuple[float, float, float | None]:
    """(untuned µs, tuned µs, max |difference| of the outputs or None when not run here)."""
    medians: dict[Path, list[float]] = {untuned: [], tuned: []}
    for _round in range(2):  # alternate, so a burst of load on a shared machine hits both
        for lib in medians:
            medians[lib].append(float(np.median(timer.sample(lib, "cpu", inputs, TIMED_CALLS))) * 1e6)
    diff = None
    if local:
        from kdcc.targets.tvm.runtime import HostStep

        a, b = HostStep(untuned, inputs)(*inputs), HostStep(tuned, inputs)(*inputs)
        diff = max(float(np.max(np.abs(np.asarray(x, float) - np.asarray(y, float)))) if np.size(x) else 0.0
                   for x, y in zip(a, b))
    return min(medians[untuned]), min(medians[tuned]), diff


def tune_step(relax_mod, inputs, profile: TargetProfile, trials: int, remote: Remote | None) -> TuneOutcome:
    """Tune the step `relax_mod` (called with `inputs`) with `trials` trials on the target's CPU device,
    or reuse the cache; then time it built with and without the records (module docstring)."""
    from kdcc.targets.tvm.build import build_library, device_arch, tvm_target
    from kdcc.targets.tvm.rpc import open_timer
    from kdcc.targets.tvm.toolchain import cache_dir

    if trials < 1:
        raise KdccError(f"--tune must be a positive number of trials, got {trials}")
    device = tuning_device(profile, remote)
    where = f"target {profile.name} [device {device.name}]"
    target, _ = tvm_target(device, profile)
    tasks = _tasks(relax_mod, target)
    if not tasks:
        raise KdccError(f"{where}: --tune: the step has no GEMM kernel to tune")
    key = _key(target, tasks)
    entry = cache_dir() / "tune" / key
    entry.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    arch = device_arch(device)
    new = 0
    if _cached_trials(entry) >= trials:
        note(f"tune: reusing {_cached_trials(entry)} tuning records from {entry} (no new trials)")
    else:
        tuning = open_timer(remote)
        note(f"tune: {trials - _cached_trials(entry)} trials over {len(tasks)} GEMM kernels on {tuning.how}")
        new = _tune(tasks, target, entry, trials - _cached_trials(entry), tuning, arch, where)
        tuning.close()  # the candidates' session ends; the builds are compared in a fresh one
    timer = open_timer(remote)
    with tempfile.TemporaryDirectory(prefix="kdcc-tune-") as work:
        work = Path(work)
        built = {name: build_library(relax_mod, device, profile, work / f"{name}.so", work / ".work",
                                     database=entry if name == "tuned" else None) for name in ("untuned", "tuned")}
        untuned_us, tuned_us, diff = _compare(timer, built["untuned"].path, built["tuned"].path, inputs,
                                              local=remote is None or arch == platform.machine())
    if diff is not None and diff > TOLERANCE:
        raise KdccError(f"{where}: --tune: the tuned step's outputs differ from the untuned one's by {diff:.3g} "
                        f"(> {TOLERANCE}); remove {entry} and report it")
    return TuneOutcome(device.name, str(entry), key, [t.task_name for t in tasks], _cached_trials(entry), new,
                       timer.how, round(untuned_us, 3), round(tuned_us, 3), diff, datetime.date.today().isoformat())


def tune_team_step(module, spec, profile: TargetProfile, trials: int, remote: Remote | None) -> TuneOutcome:
    """`tune_step` on a team step module (lowered as the bundle lowers it), on its example inputs."""
    from kdcc.ir.team import team_example_inputs
    from kdcc.targets.tvm.lowering import to_relax

    return tune_step(to_relax(module, spec), [x.numpy() for x in team_example_inputs(spec)], profile, trials, remote)
