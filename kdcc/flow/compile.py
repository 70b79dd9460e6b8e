"""`kdcc compile`: the driver's passes, then the backend's bundle, with report and record inside.

Inputs are all validated before anything is written; the bundle (and the
`--record` directory) are written atomically, so a failure at any point —
including Ctrl-C — leaves no partial output and an existing bundle untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcc.core.fileio import atomic_write_tree
from kdcc.flow.driver import CompileOptions, CompileResult, check_output_dir, run_passes
from kdcc.inputs.sources import files_sha256, teacher_files
from kdcc.reports.html import html_report
from kdcc.reports.markdown import markdown_report
from kdcc.reports.record import file_sha256, record_files, versions

__all__ = ["compile_teacher", "CompileOutput"]


@dataclass
class CompileOutput:
    result: CompileResult
    out_dir: Path | None
    bundle: Any  # what the backend reports (libraries, sizes, GPU image kind), None without a build
    pareto: dict[str, Any] | None = None  # the --pareto sweep (also pareto.json in the bundle)


def _manifest(teacher_path: str, target: str, opts: CompileOptions, result: CompileResult) -> dict[str, Any]:
    files = teacher_files(teacher_path, opts.config)
    inputs = {"teacher": {"path": Path(teacher_path).name, "sha256": files_sha256(files)}}
    if len(files) > 1:  # a model directory or an ONNX teacher: name what the hash covers
        inputs["teacher"]["files"] = [f.name for f in files]
    if opts.dataset:
        inputs["dataset"] = {"path": Path(opts.dataset).name, "sha256": file_sha256(opts.dataset)}
    budget = {k: v for k, v in opts.budget.__dict__.items() if v is not None}
    return {"target": target, "pipeline": opts.pipeline, "passes": result.passes, "seed": opts.seed,
            "budget": budget, "options": dict(sorted(opts.options.items())), "inputs": inputs,
            "versions": versions()}


def compile_teacher(teacher_path: str, target: str, out: str | Path | None, opts: CompileOptions, *,
                    force: bool = False, record: str | Path | None = None, build: bool = True) -> CompileOutput:
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        check_output_dir(out_dir, force)
    if record is not None:
        check_output_dir(Path(record), force)
    import torch

    torch.set_num_threads(1)  # passes and the ablation's re-runs: bitwise reproducible, and fastest here
    result = run_passes(teacher_path, target, opts)
    manifest = _manifest(teacher_path, target, opts, result)
    rec_files = record_files(result.records, manifest)
    bundle = sweep = None
    sections, figures, sweep_files = [], {}, {}
    if opts.pareto:  # also without -o: `--json` prints it
        from kdcc.reports.pareto import budget_sweep, pareto_figure, pareto_markdown

        sweep = budget_sweep(result)
        sections.append(("Budget vs score", pareto_markdown(sweep)))
        figures["budget_vs_score"] = lambda: pareto_figure(sweep)
        sweep_files["pareto.json"] = (json.dumps(sweep, indent=2, sort_keys=True) + "\n").encode()
    if out_dir is not None:
        if opts.ablate:
            from kdcc.reports.ablation import ablate_distillation

            sections.insert(0, ("Ablation of the distillation terms", ablate_distillation(result, result.ctx)))
        report = markdown_report(Path(teacher_path).name, target, result.records, extra_sections=sections)
        html = html_report(Path(teacher_path).name, target, result.records, extra_sections=sections,
                           extra_figures=figures)
        extra = {"report.md": report.encode(), "report.html": html.encode(), **sweep_files,
                 **{f"record/{k}": v for k, v in rec_files.items() if k != "timings.json"}}
        if build:
            from kdcc.targets.bundle.writer import write_bundle

            meta = {"fidelity": result.records[-1].fidelity, "cost": result.records[-1].metrics,
                    "inputs": manifest["inputs"], "pipeline": result.passes}
            bundle = write_bundle(result.program.team_module(), result.program.spec, result.profile, out_dir,
                                  force=force, extra_files=extra, meta=meta,
                                  inputs=[*teacher_files(teacher_path, opts.config),
                                          *([opts.dataset] if opts.dataset else []),
                                          *([target] if Path(target).is_file() else [])])
        else:
            atomic_write_tree(out_dir, extra)
    if record is not None:  # after the bundle: a failed build replaces neither
        atomic_write_tree(record, rec_files)
    return CompileOutput(result, out_dir, bundle, sweep)
