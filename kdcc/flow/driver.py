"""The passes stage of a compile: the plan, the data, and the pipeline with its instruments.

`plan_passes` checks the pass list and its options before any work; `run_passes`
gets the MPE data the training passes need (the given dataset, or teacher
rollouts collected in memory), builds the fixed probe and runs the pipeline,
one `PassRecord` per pass. `single_threaded` is the one place torch's thread
count and seed are set for a compile.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from kdcc.core.errors import KdccError
from kdcc.core.progress import is_quiet, stderr_console
from kdcc.flow.collect import collect_dataset
from kdcc.flow.inputs import CompileInputs, resolve_inputs
from kdcc.flow.instruments import DumpIR, ProgressLine
from kdcc.inputs.sources import initial_program
from kdcc.ir.program import Program
from kdcc.marl.probe import make_probe
from kdcc.passes import Budget, PassContext, check_options, get_pass
from kdcc.passes.manager import PassRecord, run_pipeline, select_passes
from kdcc.passes.pipelines import pipeline as named_pipeline

__all__ = ["CompileOptions", "CompileResult", "plan_passes", "run_passes", "single_threaded"]


@dataclass
class CompileOptions:
    pipeline: str = "default"
    passes: Sequence[str] | None = None  # --passes: run exactly these, in this order
    skip: Sequence[str] = ()
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    dataset: str | None = None  # a `kdcc collect` file; collected on the fly when a pass needs one
    collect_episodes: int = 200
    config: str | None = None  # --config: a model directory's sacred config.json, an ONNX teacher's spec
    dump_ir: str | None = None
    ablate: bool = False  # re-run distill without each loss term and report the difference
    pareto: bool = False  # re-run prune+distill at scaled budgets and report the budget-vs-score front
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompileResult:
    program: Program
    records: list[PassRecord]
    passes: list[str]
    wall_s: float
    inputs: CompileInputs
    ctx: PassContext

    @property
    def teacher(self):
        return self.inputs.teacher

    @property
    def profile(self):
        return self.inputs.profile


@contextmanager
def single_threaded(seed: int):
    """One torch thread and a fixed seed for the whole compile, restored after.

    Float sums depend on the thread count: one thread gives the same bytes on any
    machine, and for graphs this small it is also the fastest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def plan_passes(opts: CompileOptions) -> list[str]:
    """The passes to run, checked against what the compile's options need; nothing is run yet."""
    names = select_passes(named_pipeline(opts.pipeline), opts.passes, opts.skip)
    if opts.pareto and not ("prune" in names and "distill" in names[names.index("prune"):]):
        raise KdccError("--pareto re-runs prune and distill at other budgets: the pipeline must have prune "
                        f"followed by distill (it has: {', '.join(names)})")
    opts.options = check_options(opts.options)  # typed by each pass's config: the record keeps the typed values
    return names


def _training_data(inputs: CompileInputs, names: list[str], opts: CompileOptions):
    if inputs.dataset is not None or not any(get_pass(n).needs_training for n in names):
        return inputs.dataset
    return collect_dataset(inputs.teacher, inputs.teacher_path.name, episodes=opts.collect_episodes,
                           seed=opts.seed + 1)


def run_passes_on(inputs: CompileInputs, names: list[str], opts: CompileOptions) -> CompileResult:
    """The pipeline on resolved inputs: data, probe, passes; call inside `single_threaded`."""
    start = time.perf_counter()
    program = initial_program(inputs.teacher, names, opts.seed)  # an ONNX teacher: a fresh student
    ctx = PassContext(teacher=inputs.teacher, profile=inputs.profile, dataset=_training_data(inputs, names, opts),
                      budget=opts.budget, seed=opts.seed, options=dict(opts.options))
    probe = make_probe(inputs.teacher)
    instruments = [DumpIR(opts.dump_ir)] if opts.dump_ir else []
    if not is_quiet():
        instruments.append(ProgressLine(stderr_console))
    program, records = run_pipeline(program, names, ctx, probe, instruments)
    return CompileResult(program, records, names, time.perf_counter() - start, inputs, ctx)


def run_passes(teacher_path: str, target: str, opts: CompileOptions) -> CompileResult:
    """Everything but writing: resolve the inputs, plan, and run the passes (the API's short way)."""
    with single_threaded(opts.seed):
        names = plan_passes(opts)
        return run_passes_on(resolve_inputs(teacher_path, target, opts.config, opts.dataset), names, opts)
