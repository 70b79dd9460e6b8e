"""MetaSchedule's builder and runner for kdcc's tuning, in this process.

MetaSchedule's own `LocalBuilder`/`LocalRunner` build and time each candidate in a pool of
worker processes, each of which first imports TVM; on a loaded 2-core machine that start-up
alone outlasted the builder's 60 s timeout and no trial completed. A team step's kernels are
small (a candidate builds in well under a second), so here the candidates are built one after
the other in this process, linked as the bundle's libraries are (`toolchain.linker_for`, so an
aarch64 candidate is cross-linked), and timed on the device of an `rpc.Timer`: this machine, or
the board through the same RPC session `kdcc measure` uses. A candidate that fails to build or
run is reported to MetaSchedule as an error, as the pool's workers would.

The schedule space is MetaSchedule's generic LLVM one without parallel loops
(`single_thread_space`): a robot runs its step on one thread, a parallel launch costs more than a
team step's kernels, and a parallel kernel run in the RPC server's forked worker crashed it.

The other half of the pool's start-up: MetaSchedule's first tuning context imports
`tvm.s_tir.tensor_intrin`, which parses ~500 TVMScript tensor intrinsics, nearly all CUDA ones,
each parse calling `inspect.stack()` (slow with torch's thousands of modules loaded): measured
here at 117 s of a 169 s first `TuneContext`. `cpu_tensor_intrinsics` registers only the CPU
intrinsics of the tuned machine (x86: 0.5 s, arm_cpu: 4 s) before MetaSchedule asks for them.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

__all__ = ["cpu_tensor_intrinsics", "single_thread_space", "make_builder", "make_runner"]

NUMBER = 20  # calls per timed sample: one call of a tiny kernel is below the timer's resolution
REPEAT = 3   # samples per candidate (MetaSchedule keeps their mean)


INTRINSICS = {"x86_64": "x86", "aarch64": "arm_cpu"}  # tvm.s_tir.tensor_intrin module per machine


def cpu_tensor_intrinsics(arch: str) -> None:
    """Register the tensor intrinsics of `arch`'s CPU, and let `import tvm.s_tir.tensor_intrin`
    (MetaSchedule's) find the package without importing all of them (module docstring)."""
    package = "tvm.s_tir.tensor_intrin"
    if package not in sys.modules:
        import tvm.s_tir

        stub = types.ModuleType(package, "CPU tensor intrinsics only (kdcc.targets.tvm.ms_harness)")
        stub.__path__ = [str(Path(tvm.s_tir.__file__).parent / "tensor_intrin")]
        stub.__package__ = package
        sys.modules[package] = stub
    if arch in INTRINSICS:
        importlib.import_module(f"{package}.{INTRINSICS[arch]}")


def single_thread_space():
    """MetaSchedule's LLVM schedule space with parallelism off (module docstring)."""
    from tvm.s_tir import meta_schedule as ms

    rules = [ms.schedule_rule.ParallelizeVectorizeUnroll(max_jobs_per_core=-1, max_vectorize_extent=64,
                                                         unroll_max_steps=[0, 16, 64, 512], unroll_explicit=True)
             if isinstance(r, ms.schedule_rule.ParallelizeVectorizeUnroll) else r
             for r in ms.schedule_rule.ScheduleRule.create("llvm")]
    return ms.space_generator.PostOrderApply(sch_rules=rules, postprocs="llvm", mutator_probs="llvm")


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def make_builder(work: Path, arch: str, where: str):
    """A MetaSchedule Builder: each candidate compiled here and exported as a shared library
    for `arch` into its own directory under `work` (MetaSchedule deletes that directory after
    the run)."""
    import tvm
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    from kdcc.targets.tvm.toolchain import linker_for

    _, fcompile = linker_for(arch, where)

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:  # as MetaSchedule's default_build: time the kernel on already-rewritten weights
                    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(item.mod)
                    lib = tvm.compile(mod, target=item.target)
                    path = Path(tempfile.mkdtemp(dir=work)) / "candidate.so"
                    lib.export_library(str(path), fcompile=fcompile)
                    results.append(BuilderResult(str(path), None))
                except Exception as e:  # a candidate TVM cannot build: MetaSchedule skips it
                    results.append(BuilderResult(None, _one_line(e)))
            return results

    return InProcessBuilder()


def _random_args(args_info, dev, tvm, rng: np.random.Generator) -> list:
    """The kernel's arguments on the device: uniform floats in [-1, 1), zero integers (indices)."""
    args = []
    for info in args_info:
        _, dtype, shape = info.as_json()
        shape = [int(s) for s in shape]
        data = rng.uniform(-1, 1, shape).astype(str(dtype)) if "float" in str(dtype) else np.zeros(shape, str(dtype))
        args.append(tvm.runtime.tensor(data, dev))
    return args


def make_runner(timer):
    """A MetaSchedule Runner timing each built candidate on `timer`'s CPU device: NUMBER calls per
    sample, REPEAT samples, on the device (`time_evaluator`)."""
    import tvm
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture, RunnerResult

    @derived_object
    class Done(PyRunnerFuture):
        def __init__(self, secs, error):
            super().__init__()
            self.secs, self.error = secs, error

        def done(self) -> bool:
            return True

        def result(self) -> RunnerResult:
            return RunnerResult(self.secs, self.error)

    rng = np.random.default_rng(0)

    @derived_object
    class DeviceRunner(PyRunner):
        def run(self, runner_inputs):
            futures = []
            dev = timer.device("cpu")
            for item in runner_inputs:
                try:
                    mod = timer.load(Path(item.artifact_path))
                    args = _random_args(item.args_info, dev, tvm, rng)
                    timed = mod.time_evaluator(mod.entry_name, dev, number=NUMBER, repeat=REPEAT)
                    futures.append(Done([float(s) for s in timed(*args).results], None))
                except Exception as e:  # a candidate that fails on the device: MetaSchedule skips it
                    futures.append(Done(None, _one_line(e)))
            return futures

    return DeviceRunner()
