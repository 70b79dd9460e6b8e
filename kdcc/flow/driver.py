"""The passes stage of a compile: the plan, the data, and the pipeline with its instruments.

`plan_passes` checks the pass list and its options before any work; `run_passes`
gets the MPE data the training passes need (the given dataset, or teacher
rollouts collected in memory), builds the fixed probe and runs the pipeline,
one `PassRecord` per pass. `single_threaded` is the one place torch's thread
count, seed and deterministic mode are set for a compile.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Sequence


from kdcc.core.errors import KdccError
from kdcc.core.numerics import deterministic_torch, pin_problem
from kdcc.core.progress import is_quiet, note, stderr_console
from kdcc.flow.collect import collect_dataset
from kdcc.flow.inputs import CompileInputs, resolve_inputs
from kdcc.flow.instruments import DumpIR, ProgressLine
from kdcc.flow.keep import DEFAULT_KEEP
from kdcc.inputs.sources import initial_program
from kdcc.ir.program import Program
from kdcc.marl.probe import make_probe
from kdcc.marl.seeds import COLLECT
from kdcc.passes import Budget, PassContext, check_options, get_pass
from kdcc.passes.manager import PassRecord, run_pipeline, select_passes
from kdcc.passes.pipelines import pipeline as named_pipeline

__all__ = ["CompileOptions", "CompileResult", "compile_budget", "plan_passes", "run_passes", "single_threaded"]


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
    keep: float | None = DEFAULT_KEEP  # the cheapest student whose normalised score keeps this fraction (None: off)
    keep_episodes: int = 100  # selection episodes per --keep candidate (kdcc.marl.scoring.SELECTION)
    confirm_episodes: int = 1000  # confirmation episodes of the chosen student: its reported score
    keep_z: float = 0.0  # a candidate keeps the score when score − keep_z·SE ≥ keep
    keep_workers: int = 0  # processes for the --keep trials (0: one per CPU; 1: in this process)
    ray: str | None = None  # --ray: run the --keep trials as Ray tasks ("auto": a local instance; or an address)
    certify_episodes: int = 1  # probe episodes the certify stage runs per policy (0: no certify stage)
    direct: bool = True  # --no-direct: False builds no VM-free libraries (lib/<device>/<name>.direct.so)
    precision: str = "fp32"  # --precision: fp32 | fp16 | int8 | auto (kdcc.flow.precision)
    precision_episodes: int = 30  # held-out MPE episodes per precision measured
    options: dict[str, Any] = field(default_factory=dict)
    tune: int = 0  # --tune N: MetaSchedule trials for the team step's GEMM kernels (0: none)
    remote: Any = None  # --rpc-tracker/--rpc: a kdcc.targets.tvm.rpc.Remote to tune on (None: this machine)


@dataclass
class CompileResult:
    program: Program
    records: list[PassRecord]
    passes: list[str]
    wall_s: float
    inputs: CompileInputs
    ctx: PassContext
    keep: dict[str, Any] | None = None  # the --keep search's decision (kdcc.flow.keep)
    certified: dict[str, Any] | None = None  # the certify stage's ε, teacher and student (kdcc.flow.certify_compile)

    @property
    def teacher(self):
        return self.inputs.teacher

    @property
    def profile(self):
        return self.inputs.profile

    @cached_property
    def robot_costs(self) -> dict[str, dict[str, Any]]:
        """What each role's agent step costs on every device (the report and profile.json share it)."""
        from kdcc.targets.robot_cost import robot_costs

        return robot_costs(self.program, self.profile)


@contextmanager
def single_threaded(seed: int):
    """One torch thread, deterministic algorithms and a fixed seed for the whole compile, restored after,
    with the CPU numerics kdcc pins (kdcc/core/numerics.py): the same bytes on any x86-64 CPU. A process
    whose torch ran before kdcc was imported cannot be pinned: it is said once, and recorded."""
    problem = pin_problem()
    if problem:
        note(problem)
    with deterministic_torch(seed):
        yield


def plan_passes(opts: CompileOptions) -> list[str]:
    """The passes to run, checked against what the compile's options need; nothing is run yet."""
    names = select_passes(named_pipeline(opts.pipeline), opts.passes, opts.skip)
    sizes_student = "prune" in names and "distill" in names[names.index("prune"):]
    if opts.keep == DEFAULT_KEEP and not sizes_student:
        opts.keep = None  # the default objective applies where the pipeline makes a student to size
    if opts.keep is not None and not 0 <= opts.keep <= 10:
        raise KdccError(f"--keep: a fraction of the teacher's score (e.g. 0.97), or off; got {opts.keep:g}")
    for flag, why in (("--pareto", "re-runs prune and distill at other budgets"),
                      ("--keep", "searches prune widths, each distilled")):
        if getattr(opts, flag[2:]) not in (None, False) and not sizes_student:
            raise KdccError(f"{flag} {why}: the pipeline must have prune followed by distill (it has: "
                            f"{', '.join(names)})")
    if opts.ray is not None and opts.keep is None:
        raise KdccError("--ray runs the --keep search's trials: it needs --keep (not off)")
    if opts.certify_episodes < 0:
        raise KdccError(f"--certify-episodes must be 0 (no certify stage) or more, got {opts.certify_episodes}")
    opts.options = check_options(opts.options)  # typed by each pass's config: the record keeps the typed values
    return names


def compile_budget(budget: Budget, keep: float | None) -> Budget:
    """The budget the passes run under: a given one as it is (hard limits); none given, `Budget.DEFAULT_RATIO`×
    fewer FLOPs than the teacher, or, when a score is asked for (--keep), no size limit (ratio 1: every
    student up to the teacher's width is a candidate)."""
    if budget.is_given():
        return budget
    return replace(budget, ratio=1.0 if keep is not None else Budget.DEFAULT_RATIO)


def _training_data(inputs: CompileInputs, names: list[str], opts: CompileOptions):
    if inputs.dataset is not None or not any(get_pass(n).needs_training for n in names):
        return inputs.dataset
    return collect_dataset(inputs.teacher, inputs.teacher_path.name, episodes=opts.collect_episodes,
                           seed=COLLECT.first(opts.collect_episodes, opts.seed))


def run_passes_on(inputs: CompileInputs, names: list[str], opts: CompileOptions) -> CompileResult:
    """The pipeline on resolved inputs: data, probe, passes; call inside `single_threaded`."""
    start = time.perf_counter()
    program = initial_program(inputs.teacher, names, opts.seed)  # an ONNX teacher: a fresh student
    ctx = PassContext(teacher=inputs.teacher, profile=inputs.profile, dataset=_training_data(inputs, names, opts),
                      budget=compile_budget(opts.budget, opts.keep), seed=opts.seed, options=dict(opts.options))
    probe = make_probe(inputs.teacher)
    instruments = [DumpIR(opts.dump_ir)] if opts.dump_ir else []
    if not is_quiet():
        instruments.append(ProgressLine(stderr_console))
    search = None
    if opts.keep is None:
        program, records = run_pipeline(program, names, ctx, probe, instruments)
    else:
        program, records, ctx, search = _run_with_keep(program, names, ctx, probe, instruments, opts)
    return CompileResult(program, records, names, time.perf_counter() - start, inputs, ctx, search)


def _run_with_keep(program, names, ctx, probe, instruments, opts):
    """The passes before prune, the --keep search from there (selection, then confirmation), then prune onward
    at the chosen width: the records read as one pipeline, prune's carrying the search's decision."""
    from kdcc.flow.keep import keep_decision, keep_metric, keep_search, trial_context

    first = names.index("prune")
    head, records = run_pipeline(program, names[:first], ctx, probe, instruments)
    search, ran = keep_search(head, names, ctx, opts.keep, opts.keep_episodes, opts.keep_workers,
                              metric=keep_metric(opts.budget), ray=opts.ray, z=opts.keep_z,
                              confirm_episodes=opts.confirm_episodes)
    shifted = [lambda r, p, inst=inst: r.index and inst(replace(r, index=r.index + first), p) for inst in instruments]
    sub = trial_context(ctx, search["chosen"]["kind"], search["chosen"]["width"], ctx.seed)
    program, tail = run_pipeline(head, names[first:], sub, probe, shifted, ran=ran)  # recorded, not retrained
    records += [replace(r, index=r.index + first) for r in tail[1:]]  # tail[0]: `head` again
    records[first + 1].decisions["keep"] = keep_decision(search)
    return program, records, sub, search


def run_passes(teacher_path: str, target: str, opts: CompileOptions) -> CompileResult:
    """Everything but writing: resolve the inputs, plan, and run the passes (the API's short way)."""
    with single_threaded(opts.seed):
        names = plan_passes(opts)
        return run_passes_on(resolve_inputs(teacher_path, target, opts.config, opts.dataset), names, opts)
