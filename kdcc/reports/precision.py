"""The report's "Precision" section: each precision considered, its fidelity against the fp32 student,
its size and its estimated latency per device, and which one the bundle was built at."""

from __future__ import annotations

from typing import Any, Mapping

from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["precision_section"]


def precision_section(decision: Mapping[str, Any]) -> Section:
    """`decision`: kdcc.flow.compile's precision record (requested, chosen, rule, points)."""
    points = decision["points"]
    devices = sorted(points[0]["latency_us"])
    columns = (Column("precision", "precision", align="left"),
               Column("action_agreement", "actions = fp32", cell=lambda r: f"{r['action_agreement']:.1%}"),
               Column("score", "norm. score", cell=lambda r: "—" if r["score"] is None else f"{r['score']:.3f}"),
               Column("delta", "Δ vs fp32 (± SE)", cell=lambda r: "—" if r["delta"] is None else f"{r['delta']:+.3f} ± {r['delta_se']:.3f}"),
               Column("weight_bytes", "weights/robot (B)", cell=lambda r: f"{r['weight_bytes']:,}"),
               Column("host_library_bytes", "team lib, host (B)", cell=lambda r: f"{r['host_library_bytes']:,}"),
               Column("host_step_us", "team step here (µs)",
                      cell=lambda r: "—" if r.get("host_step_us") is None else f"{r['host_step_us']:.2f}"),
               *(Column(f"lat.{d}", f"est. µs ({d})", cell=lambda r, d=d: f"{r['latency_us'][d]:.2f}")
                 for d in devices))
    note = (f"Requested --precision {decision['requested']}; built at {decision['chosen']}. {decision['rule']} "
            f"Scores over {points[0]['episodes']} held-out MPE episodes; agreement on the probe's teacher "
            f"trajectories. Team step here: measured from Python on this machine's build. Est.: the cost model at each "
            f"precision's peak throughput (per robot, the largest role). Auto compared: {decision.get('latency_basis', '')}.")
    return Section("Precision", (Table(columns, tuple(points), "Precision"), Paragraph(text(note))))
