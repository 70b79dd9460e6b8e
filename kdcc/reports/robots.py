"""The report's "What each robot runs" section: per role, one agent step's cost on every device,
beside the team step a simulator or a station runs, and what a budget's scope meant."""

from __future__ import annotations

from typing import Any, Mapping

from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["robots_section"]


def _device_columns(devices: list[str]) -> tuple[Column, ...]:
    cols = []
    for d in devices:
        cols.append(Column(f"lat.{d}", f"est. µs ({d})", cell=lambda r, d=d: f"{r['devices'][d]['latency_us']:.2f}"))
        cols.append(Column(f"en.{d}", f"est. µJ ({d})", cell=lambda r, d=d: f"{r['devices'][d]['energy_uj']:.2f}"))
    return tuple(cols)


def robots_section(costs: Mapping[str, Mapping[str, Any]], team_metrics: Mapping[str, Any],
                   scope: str) -> Section:
    """`costs`: `kdcc.targets.robot_cost.robot_costs`; `team_metrics`: the last pass record's metrics."""
    devices = sorted(next(iter(costs.values()))["devices"])
    rows = [{"role": name, **c, "agents_text": ", ".join(map(str, c["agents"]))} for name, c in costs.items()]
    team = {"role": "team step (all agents + mixer)", "agents_text": "all", "flops": team_metrics["flops"],
            "bytes": team_metrics["bytes"], "param_bytes": team_metrics["param_bytes"],
            "devices": {d: {"latency_us": team_metrics[f"latency_us.{d}"], "energy_uj": team_metrics[f"energy_uj.{d}"]}
                        for d in devices}}
    columns = (Column("role", "runs", align="left"), Column("agents_text", "agents", align="left"),
               Column("flops", "FLOPs/step", cell=lambda r: f"{r['flops']:,}"),
               Column("bytes", "bytes moved", cell=lambda r: f"{r['bytes']:,}"),
               Column("param_bytes", "weights (B)", cell=lambda r: f"{r['param_bytes']:,}"),
               *_device_columns(devices))
    scope_text = ("one robot's agent step (every role had to fit)" if scope == "robot"
                  else "the whole team step")
    note = (f"Each robot runs its own role's library on its own observation (lib/<device>/<role>.direct.so on a CPU: "
            f"VM-free, libc only; lib/<device>/<role>.so with TVM's runtime on a GPU): nothing from "
            f"other agents and no global state per step. The team step is what a simulator or a central station "
            f"runs. The budget limited {scope_text} (--budget-scope {scope}).")
    return Section("What each robot runs", (Table(columns, tuple([*rows, team]), "What each robot runs"),
                                            Paragraph(text(note))))
