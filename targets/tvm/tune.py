"""`kdcc compile --tune N`: MetaSchedule tuning of a CPU step, cached by target and graph.

The graph is prepared exactly as `schedules.cpu_pipeline` prepares it (library dispatch,
legalize with kdcc's fast math, FoldConstant, FuseOps, FuseTIR), so the fused PrimFuncs that
MetaSchedule tunes are the ones the build looks up. Each fused kernel gets N trials (the
evolutionary search with a random cost model: no xgboost needed, and at a few dozen trials per
kernel a learned model has too little to learn from). The build then applies the database's
best schedule to each tuned kernel (`MetaScheduleApplyDatabase`) and kdcc's own schedule to
the rest.

The database lives in `$KDCC_CACHE_DIR/tuning/<hash>/` (default ~/.cache/kdcc), the hash over
the TVM target and the fused graph's text (weights elided: retraining does not retune); a
`kdcc-tuning.json` there records how many trials were run, so a rebuild with at most as many
does not tune again. Trials run here (LocalRunner) or on the board (RPCRunner, through a
tracker: MetaSchedule asks a tracker for its sessions). Cross-built (aarch64) tuning links
candidates with kdcc's cross linker: untested on a board.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcc.core.errors import KdccError
from kdcc.targets.tvm.rpc import Remote

__all__ = ["TuneOptions", "cache_root", "tuned_pipeline", "example_zeros", "compare"]

MARKER = "kdcc-tuning.json"


@dataclass(frozen=True)
class TuneOptions:
    trials: int  # per fused kernel
    remote: Remote | None = None

    def __post_init__(self):
        if self.trials < 1:
            raise KdccError(f"--tune must be a positive number of trials, got {self.trials}")
        if self.remote is not None and not self.remote.tracker:
            raise KdccError("--tune through RPC needs --rpc-tracker and --rpc-key (MetaSchedule's RPC runner "
                            "takes its sessions from a tracker), not --rpc")


def cache_root() -> Path:
    return Path(os.environ.get("KDCC_CACHE_DIR") or Path.home() / ".cache" / "kdcc") / "tuning"


def _fused(relax_mod, target, prepare_passes):
    import tvm

    with target:
        return tvm.transform.Sequential(prepare_passes)(relax_mod)


def _one_core(target):
    """The target with `num-cores` 1, which MetaSchedule requires: a step runs on one thread
    (`TVM_NUM_THREADS=1`, a thread pool's wake-up costs more than these kernels)."""
    import tvm

    return tvm.target.Target({**target.export(), "num-cores": 1})


def _graph_hash(fused, target) -> str:
    h = hashlib.sha256(json.dumps(target.export(), sort_keys=True, default=str).encode())
    h.update(fused.script(show_meta=False).encode())
    return h.hexdigest()[:20]


def _runner_builder(opts: TuneOptions, fcompile):
    from tvm.s_tir import meta_schedule as ms

    builder = ms.builder.LocalBuilder(max_workers=1, timeout_sec=60.0)
    if fcompile is not None:  # cross-built candidates: link with kdcc's cross linker (untested on a board)
        def export(mod):
            import tempfile

            path = os.path.join(tempfile.mkdtemp(prefix="kdcc-tune-"), "tuned.so")
            mod.export_library(path, fcompile=fcompile)
            return path

        builder = ms.builder.LocalBuilder(max_workers=1, timeout_sec=60.0, f_export=export)
    if opts.remote is None:
        return builder, ms.runner.LocalRunner(timeout_sec=30.0)
    config = ms.runner.RPCConfig(tracker_host=opts.remote.host, tracker_port=opts.remote.port,
                                 tracker_key=opts.remote.key, session_timeout_sec=60)
    return builder, ms.runner.RPCRunner(rpc_config=config, max_workers=1)


def tuned_pipeline(relax_mod, target, opts: TuneOptions, fcompile=None) -> tuple[Any, dict[str, Any]]:
    """(a Relax pipeline that applies the tuned database, a record of the tuning) for a CPU target."""
    from tvm.s_tir import meta_schedule as ms

    from kdcc.targets.tvm.schedules.pipeline import cpu_pipeline, prepare_passes

    target = _one_core(target)
    fused = _fused(relax_mod, target, prepare_passes(target))
    key = _graph_hash(fused, target)
    work = cache_root() / key
    marker = work / MARKER
    done = json.loads(marker.read_text()) if marker.is_file() else {}
    tasks = ms.relax_integration.extract_tasks(fused, target)
    cached = done.get("trials_per_kernel", 0) >= opts.trials
    if not cached:
        work.mkdir(parents=True, exist_ok=True)
        builder, runner = _runner_builder(opts, fcompile)
        try:
            ms.relax_integration.tune_relax(
                mod=fused, params={}, target=target, work_dir=str(work), max_trials_global=opts.trials * len(tasks),
                max_trials_per_task=opts.trials, num_trials_per_iter=min(opts.trials, 16), builder=builder,
                runner=runner, cost_model="random", seed=0)
        except KdccError:
            raise
        except Exception as e:  # MetaSchedule raises assorted error types
            raise KdccError(f"tuning with MetaSchedule failed ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]})") from None
        done = {"trials_per_kernel": opts.trials, "kernels": len(tasks),
                "how": opts.remote.describe() if opts.remote else "local"}
        marker.write_text(json.dumps(done, sort_keys=True) + "\n")
    record = {"trials_per_kernel": done["trials_per_kernel"], "kernels": len(tasks), "how": done.get("how"),
              "cache": key, "reused_cache": cached}
    return cpu_pipeline(target, database_dir=work), record


def example_zeros(relax_mod) -> list:
    """Zero inputs of the shapes and dtypes of `main`'s parameters (timing needs no real values)."""
    import numpy as np

    return [np.zeros([int(d) for d in p.struct_info.shape], str(p.struct_info.dtype))
            for p in relax_mod["main"].params]


def compare(tuned: Path, untuned: Path, relax_mod, arch: str, opts: TuneOptions, calls: int = 500) -> dict[str, Any]:
    """Median µs of the tuned and the untuned library, measured where they run (here or the remote)."""
    import platform

    import numpy as np

    from kdcc.targets.tvm.rpc import open_timer

    if opts.remote is None and arch != platform.machine():
        return {"measured": f"no: built for {arch}; pass --rpc-tracker/--rpc-key to measure on the device"}
    timer = open_timer(opts.remote)
    inputs = example_zeros(relax_mod)
    out = {}
    for name, path in (("untuned", untuned), ("tuned", tuned)):
        out[f"{name}_median_us"] = round(float(np.median(timer.sample(path, "cpu", inputs, calls))) * 1e6, 3)
    out["how"] = timer.how
    return out
