"""The compile driver: teacher + target + budget -> student program -> bundle.

Stages: load and validate every input first (nothing is written before all of
them are good), get the MPE data the training passes need, build the fixed
probe, run the pipeline with its instruments, then hand the final program to
the TVM backend, which writes the bundle atomically with the report inside.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from kdcc.core.errors import KdccError
from kdcc.core.fileio import check_writable
from kdcc.core.progress import is_quiet, stderr_console
from kdcc.flow.instruments import DumpIR, ProgressLine
from kdcc.inputs.sources import initial_program
from kdcc.ir.program import Program
from kdcc.marl.probe import make_probe
from kdcc.passes import Budget, PassContext, check_options, get_pass
from kdcc.passes.manager import PassRecord, run_pipeline, select_passes
from kdcc.passes.pipelines import pipeline as named_pipeline

__all__ = ["CompileOptions", "CompileResult", "run_passes", "check_output_dir"]

log = logging.getLogger("kdcc")


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
    teacher: Any
    profile: Any
    ctx: PassContext


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse to clobber a non-empty directory unless --force; the parent must take a new directory."""
    if out.exists() and not out.is_dir():
        raise KdccError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KdccError(f"{out}: directory exists and is not empty (use --force to replace it)")
    check_writable(out, is_file=False)


def _dataset_for(teacher_path: str, teacher, opts: CompileOptions):
    from kdcc.flow.collect import collect_dataset
    from kdcc.inputs.dataset import load_dataset

    if opts.dataset:
        return load_dataset(opts.dataset, teacher.spec)
    return collect_dataset(teacher, Path(teacher_path).name, episodes=opts.collect_episodes, seed=opts.seed + 1)


def run_passes(teacher_path: str, target: str, opts: CompileOptions) -> CompileResult:
    """Everything but writing the bundle: load, (collect), probe, run the pipeline."""
    from kdcc.inputs.sources import load_teacher_source
    from kdcc.targets.profile import load_profile

    start = time.perf_counter()
    torch.manual_seed(opts.seed)
    torch.set_num_threads(1)  # tiny models: one thread is fastest here, and bitwise reproducible
    teacher = load_teacher_source(teacher_path, opts.config)
    profile = load_profile(target)
    names = select_passes(named_pipeline(opts.pipeline), opts.passes, opts.skip)
    if opts.pareto and not ("prune" in names and "distill" in names[names.index("prune"):]):
        raise KdccError("--pareto re-runs prune and distill at other budgets: the pipeline must have prune "
                        f"followed by distill (it has: {', '.join(names)})")
    opts.options = check_options(opts.options)  # typed by each pass's config; a wrong key or type is an error
    program = initial_program(teacher, names, opts.seed)  # an ONNX teacher: a fresh student
    dataset = None
    if opts.dataset or any(get_pass(n).needs_training for n in names):  # a given dataset is always checked
        dataset = _dataset_for(teacher_path, teacher, opts)
    ctx = PassContext(teacher=teacher, profile=profile, dataset=dataset, budget=opts.budget, seed=opts.seed,
                      options=dict(opts.options))
    probe = make_probe(teacher)
    instruments = []
    if opts.dump_ir:
        instruments.append(DumpIR(opts.dump_ir))
    if not is_quiet():
        instruments.append(ProgressLine(stderr_console))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums depend on the thread count: one thread gives the same bytes on any machine
    try:
        program, records = run_pipeline(program, names, ctx, probe, instruments)
    finally:
        torch.set_num_threads(threads)
    return CompileResult(program, records, names, time.perf_counter() - start, teacher, profile, ctx)
