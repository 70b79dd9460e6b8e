"""`kdcc compile`, top to bottom: the stages of a compile.

    check outputs   new or empty directories, or with --force kdcc's own earlier output; never the user's
                    files, a link, or a directory holding the inputs (kdcc.core.outputs; nothing written yet)
    plan            the pass list and its typed options, checked before any input is read
    resolve inputs  teacher (its files, one sha256), dataset, target profile: read and checked once
    passes          training data, the probe, the pipeline with its instruments (kdcc.flow.driver)
    certify         with -o: the teacher's and the student's certified ε on --certify-episodes probe
                    episodes (kdcc.flow.certify_compile), for the report and profile.json
    studies         --pareto and --ablate: re-runs of prune/distill, scored in MPE (optional); the
                    --keep search (run inside the passes stage, before prune) is reported here
    tune            --tune N: MetaSchedule tuning of the team step on its device (or its cached
                    records), timed tuned vs untuned; the bundle's build applies the records
    reports         report.md, report.html and record/ as bytes
    bundle          the TVM backend writes the bundle atomically, with its manifest and, given a key, signed
                    (or the reports alone with --no-build)
    record          --record DIR, after the bundle: a failed build replaces neither

A failure at any stage — including Ctrl-C — leaves no partial output and an
existing bundle untouched.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from kdcc.core.errors import KdccError
from kdcc.core import outputs
from kdcc.core.fileio import atomic_write_tree, output_lock
from kdcc.core.numerics import numerics_provenance
from kdcc.flow.driver import CompileOptions, CompileResult, plan_passes, run_passes_on, single_threaded
from kdcc.flow.inputs import resolve_inputs
from kdcc.reports.html import html_report
from kdcc.reports.keep import kept_score
from kdcc.reports.markdown import markdown_report
from kdcc.reports.record import record_files, versions

__all__ = ["compile_teacher", "CompileOutput", "check_output_dir"]


@dataclass
class CompileOutput:
    result: CompileResult
    out_dir: Path | None
    bundle: Any  # what the backend reports (libraries, sizes, GPU image kind), None without a build
    pareto: dict[str, Any] | None = None  # the --pareto sweep (also pareto.json in the bundle)
    keep: dict[str, Any] | None = None  # the --keep search's decision (also keep.json in the bundle)
    precision: dict[str, Any] | None = None  # --precision other than fp32: each precision measured, the one built


def check_output_dir(out: Path, force: bool, option: str = "-o", others: dict[str, Any] | None = None) -> None:
    """-o takes a bundle or a --no-build output, --record a record: a new or empty directory, or with --force one
    kdcc wrote before; never a directory of the user's, a link, or one holding the inputs (kdcc.core.outputs)."""
    kinds = ("record",) if option == "--record" else ("bundle", "reports")
    outputs.check_output_dir(out, force=force, kinds=kinds, option=option, others=others)


def _guarded(teacher_path, target: str, opts: CompileOptions, sign_key, out_dir: Path | None,
             record: str | Path | None) -> dict[str, dict[str, Any]]:
    """Per output option, what its directory may not hold: every input the compile reads and the other outputs."""
    inputs = {"the teacher": teacher_path, "--config": opts.config, "--dataset": opts.dataset,
              "--target": target if Path(target).exists() else None, "--sign-key": sign_key}
    return {"-o": {**inputs, "--record": record, "--dump-ir": opts.dump_ir},
            "--record": {**inputs, "-o": out_dir, "--dump-ir": opts.dump_ir}}


def _manifest(result: CompileResult, opts: CompileOptions) -> dict[str, Any]:
    budget = {k: v for k, v in result.ctx.budget.__dict__.items() if v is not None}
    keep = {} if result.keep is None else {"keep": {"fraction": opts.keep, "episodes": opts.keep_episodes,
                                                     "confirm_episodes": opts.confirm_episodes,
                                                     "kind": result.keep["chosen"]["kind"],
                                                     "width": result.keep["chosen"]["width"]}}
    # the context's options: with --keep they include the chosen prune.width, so the record replays it
    return {"target": result.inputs.target, "pipeline": opts.pipeline, "passes": result.passes, "seed": opts.seed,
            "budget": budget, "options": dict(sorted(result.ctx.options.items())), **keep,
            "inputs": result.inputs.manifest(), "versions": versions(), "numerics": numerics_provenance()}


def _studies(result: CompileResult, opts: CompileOptions, with_ablation: bool):
    """What each robot runs, then the optional re-runs: report sections, figures and files (--pareto is
    kept without -o for --json)."""
    from kdcc.reports.robots import robots_section

    sections = [robots_section(result.robot_costs, result.records[-1].metrics, opts.budget.scope)]
    figures, files, sweep = {}, {}, None
    if result.certified is not None:
        from kdcc.reports.certify import compile_certify_section, robust_weight, score_eps_figure

        sections.append(compile_certify_section(result.certified, result.ctx.options))
        if robust_weight(result.ctx.options) > 0:
            figures["score_vs_certified_eps"] = lambda: score_eps_figure(result.certified)
    if result.keep is not None:
        from kdcc.reports.keep import keep_figure, keep_section

        sections.append(keep_section(result.keep))
        figures["keep_search"] = lambda: keep_figure(result.keep)
        files["keep.json"] = (json.dumps(result.keep, indent=2, sort_keys=True) + "\n").encode()
    if opts.pareto:
        from kdcc.reports.pareto import budget_sweep, pareto_figure, pareto_section

        sweep = budget_sweep(result)
        sections.append(pareto_section(sweep))
        figures["budget_vs_score"] = lambda: pareto_figure(sweep)
        files["pareto.json"] = (json.dumps(sweep, indent=2, sort_keys=True) + "\n").encode()
    if opts.ablate and with_ablation:
        from kdcc.reports.ablation import ablate_distillation

        sections.insert(1, ablate_distillation(result, result.ctx))
    return sections, figures, files, sweep


def _report_files(result: CompileResult, sections, figures, study_files: dict[str, bytes],
                  rec_files: dict[str, bytes]) -> dict[str, bytes]:
    """What the bundle carries beside the libraries: the reports, the studies' files and the record."""
    name, target = result.inputs.teacher_path.name, result.inputs.target
    report = markdown_report(name, target, result.records, extra_sections=sections)
    html = html_report(name, target, result.records, extra_sections=sections, extra_figures=figures)
    return {"report.md": report.encode(), "report.html": html.encode(), **study_files,
            **{f"record/{k}": v for k, v in rec_files.items() if k != "timings.json"}}


def _tune(result: CompileResult, opts: CompileOptions, sections: list):
    """--tune: the team step tuned (or its cached records found) and timed; its report section added."""
    from kdcc.reports.tuning import tuning_section
    from kdcc.targets.tvm.tune import tune_team_step

    outcome = tune_team_step(result.program.team_module(), result.program.spec, result.profile, opts.tune,
                             opts.remote)
    sections.append(tuning_section(outcome.record()))
    return outcome


def _write_bundle(result: CompileResult, out_dir: Path, files: dict[str, bytes], force: bool,
                  sign_key: Path | None, tuning=None, precision: dict[str, Any] | None = None,
                  calibration: dict[str, list] | None = None, direct: bool = True):
    """The team step, each role's agent step (what one robot runs) and the team monitor, built and written."""
    from kdcc.ir.agent_step import MonitorStep
    from kdcc.ir.program import trace
    from kdcc.marl.agents import agent_steps
    from kdcc.targets.bundle.writer import write_bundle

    program, last = result.program, result.records[-1]
    from kdcc.ir.printer import team_ops
    from kdcc.targets.robot_cost import vm_estimate

    vm = {f"vm_latency_us.{d.name}": v for d in result.profile.devices
          for v in vm_estimate(team_ops(program), d).values()}
    meta = {"fidelity": last.fidelity, "cost": {**last.metrics, **vm}, "inputs": result.inputs.manifest(),
            "pipeline": result.passes, **({"tuning": tuning.record()} if tuning is not None else {}),
            **({"precision": precision} if precision else {}),
            **({"score": kept_score(result.keep)} if result.keep is not None else {})}
    return write_bundle(program.team_module(), program.spec, result.profile, out_dir, force=force,
                        extra_files=files, meta=meta, inputs=result.inputs.files, agents=agent_steps(program),
                        monitor=trace(MonitorStep(program.mixer, not program.spec.sums).eval(), "Monitor"),
                        robot_costs=result.robot_costs, certified=result.certified, sign_key=sign_key,
                        tuned=(tuning.device, Path(tuning.database)) if tuning is not None else None,
                        precision=precision["chosen"] if precision else "fp32", calibration=calibration,
                        direct=direct)


def compile_teacher(teacher_path: str, target: str, out: str | Path | None, opts: CompileOptions, *,
                    force: bool = False, record: str | Path | None = None, build: bool = True,
                    sign_key: str | Path | None = None) -> CompileOutput:
    """`sign_key`: an EC private key (PEM) to sign the bundle with; checked before any work."""
    out_dir = Path(out) if out is not None else None
    if sign_key is not None:
        from kdcc.targets.bundle.signing import check_private_key

        if out_dir is None or not build:
            raise KdccError(f"--sign-key {sign_key}: there is no bundle to sign without -o and a build")
        sign_key = check_private_key(sign_key)
    if opts.tune and (out_dir is None or not build):
        raise KdccError(f"--tune {opts.tune}: there is no library to tune without -o and a build")
    if opts.remote is not None and not opts.tune:
        raise KdccError("--rpc-tracker/--rpc name the device --tune runs on: give --tune N too")
    if opts.tune < 0:
        raise KdccError(f"--tune must be a positive number of trials, got {opts.tune}")
    if opts.precision != "fp32" and (out_dir is None or not build):
        raise KdccError(f"--precision {opts.precision}: there is no library to build at it without -o and a build")
    out_dirs = {option: Path(d) for option, d in (("-o", out_dir), ("--record", record)) if d is not None}
    guarded = _guarded(teacher_path, target, opts, sign_key, out_dir, record)
    for option, directory in out_dirs.items():
        check_output_dir(directory, force, option, guarded[option])
    with contextlib.ExitStack() as held:
        for directory in out_dirs.values():  # a second compile into the same output fails now, not half-way
            held.enter_context(output_lock(directory))
        return _compile_locked(teacher_path, target, out_dir, record, opts, force, build, sign_key)


def _compile_locked(teacher_path, target, out_dir, record, opts, force, build, sign_key) -> CompileOutput:
    from kdcc.flow.precision import check_precision_option, decide_precision

    check_precision_option(opts.precision)
    with single_threaded(opts.seed):
        names = plan_passes(opts)
        inputs = resolve_inputs(teacher_path, target, opts.config, opts.dataset)
        if opts.tune:
            from kdcc.targets.tvm.tune import tuning_device

            tuning_device(inputs.profile, opts.remote)  # a device that cannot be tuned from here: fail now
        if out_dir is not None and build:
            from kdcc.targets.bundle.writer import bundle_runtime

            bundle_runtime(inputs.profile)  # a runtime to ship that was never fetched: fail now, not after training
        result = run_passes_on(inputs, names, opts)
        if out_dir is not None and opts.certify_episodes > 0:  # only where a report and profile.json show it
            from kdcc.flow.certify_compile import certify_compile

            result.certified = certify_compile(result.teacher, result.program, opts.certify_episodes)
        sections, figures, study_files, sweep = _studies(result, opts, with_ablation=out_dir is not None)
        tuning = _tune(result, opts, sections) if opts.tune and out_dir is not None and build else None
        precision, calibration = decide_precision(result, opts.precision, opts.precision_episodes) if (
            out_dir is not None and build) else (None, {})
        if precision is not None:
            from kdcc.reports.precision import precision_section

            sections.append(precision_section(precision))
        rec_files = record_files(result.records, _manifest(result, opts))
        bundle = None
        if out_dir is not None:
            files = _report_files(result, sections, figures, study_files, rec_files)
            if build:
                bundle = _write_bundle(result, out_dir, files, force, sign_key, tuning, precision, calibration,
                                       opts.direct)
            else:
                atomic_write_tree(out_dir, files)
    if record is not None:
        atomic_write_tree(record, rec_files)
    return CompileOutput(result, out_dir, bundle, sweep, result.keep, precision)
