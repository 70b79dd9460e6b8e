"""The compile report as a Document: the summary, the pass table, the decisions, then extra sections.

report.md and report.html render this one document (report.html adds the plots
after the decisions), so both say the same thing in the same words.
"""

from __future__ import annotations

from typing import Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.decisions import decision_items
from kdcc.reports.document import Document, Item, Items, Section, as_sections, bold, code, text
from kdcc.reports.pass_table import pass_table

__all__ = ["compile_document"]


def _summary(records: Sequence[PassRecord]) -> Items:
    first, last = records[0].metrics, records[-1].metrics
    fid = records[-1].fidelity
    flops_x = first["flops"] / max(last["flops"], 1)
    bytes_cut = 1 - last["param_bytes"] / max(first["param_bytes"], 1)
    lines = [
        text(f"FLOPs per team step: {first['flops']:,} → {last['flops']:,} (", bold(f"{flops_x:.1f}× fewer"), ")"),
        text(f"parameter bytes: {first['param_bytes']:,} → {last['param_bytes']:,} (",
             bold(f"{100 * bytes_cut:.1f}% fewer"), ")"),
        text(f"estimated latency on {last['device']}: {first['latency_us']:.2f} µs → {last['latency_us']:.2f} µs; "
             f"energy {first['energy_uj']:.2f} µJ → {last['energy_uj']:.2f} µJ per step"),
        text(f"fidelity on the probe (teacher's trajectories): greedy-action agreement "
             f"{fid['action_agreement']:.3f}, max |ΔQ| {fid['max_abs_dq']:.3g}, "
             f"mean |ΔQ_tot| {fid['mean_abs_dq_tot']:.3g}"),
    ]
    return Items(tuple(Item(t) for t in (*_algorithm_lines(records), *lines)))


def _algorithm_lines(records: Sequence[PassRecord]) -> list:
    """For a teacher other than QMIX: its algorithm and what the compile did with each of its parts."""
    program = records[-1].program
    if program is None or program.spec.algorithm == "qmix":
        return []
    spec = program.spec
    decisions = {r.name: r.decisions for r in records}
    mixer = decisions.get("approximate-mixer", {}).get("reason", "kept as it is (a sum)")
    outputs = "action logits (an actor)" if spec.policy == "logits" else "Q-values"
    lines = [text(f"teacher: {spec.algorithm.upper()}; the agents output {outputs}, the student keeps that "
                  f"interface; mixer: {mixer}")]
    critic = decisions.get("distill", {}).get("terms", {}).get("critic")
    if critic:
        lines.append(text(f"critic: {critic}"))
    return lines


def compile_document(teacher_name: str, target: str, records: Sequence[PassRecord],
                     extra_sections: Sequence[Section] = ()) -> Document:
    """Extra sections (ablation, budget vs score) follow the decisions, as Section records or
    (title, markdown) pairs."""
    title = text("kdcc compile report: ", code(teacher_name), " → target ", code(target))
    sections = (Section("Pass by pass", (pass_table(records),)), Section("Decisions", (decision_items(records),)),
                *as_sections(extra_sections))
    return Document(title, (_summary(records),), tuple(sections))
