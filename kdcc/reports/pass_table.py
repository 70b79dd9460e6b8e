"""The pass-by-pass table: one row per PassRecord, its columns defined once.

`kdcc compile` shows it in the terminal and as `--json`, and report.md and
report.html show it; each renders this table, so a header, a number format or
an alignment is changed here for all four.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.document import Column, Table

__all__ = ["PASS_COLUMNS", "pass_row", "pass_table"]


def _fmt(key: str, spec: str):
    return lambda row: format(row[key], spec)


def _latency(row: Mapping[str, Any]) -> str:
    return f"{row['latency_us']:.2f} ({row['device']})"


PASS_COLUMNS = (
    Column("index", "#", cell=_fmt("index", "02d")),
    Column("pass", "pass", align="left"),
    Column("flops", "FLOPs/step", cell=_fmt("flops", ",")),
    Column("params", "params", cell=_fmt("params", ",")),
    Column("bytes", "bytes/step", cell=_fmt("bytes", ",")),
    Column("latency_us", "est. µs", cell=_latency),  # on the device the cost model picked for the pass
    Column("energy_uj", "est. µJ", cell=_fmt("energy_uj", ".2f")),
    Column("max_abs_dq", "max |ΔQ|", cell=_fmt("max_abs_dq", ".3g")),
    Column("action_agreement", "action agree", cell=_fmt("action_agreement", ".3f")),
    Column("mean_abs_dq_tot", "mean |ΔQ_tot|", cell=_fmt("mean_abs_dq_tot", ".3g")),
)


def pass_row(record: PassRecord) -> dict[str, Any]:
    """The values one row shows, as JSON values (the device rides along for the latency cell)."""
    m, f = record.metrics, record.fidelity
    return {"index": record.index, "pass": record.name, "flops": m["flops"], "params": m["params"],
            "bytes": m["bytes"], "latency_us": m["latency_us"], "device": m["device"], "energy_uj": m["energy_uj"],
            "max_abs_dq": f["max_abs_dq"], "action_agreement": f["action_agreement"],
            "mean_abs_dq_tot": f["mean_abs_dq_tot"]}


def pass_table(records: Sequence[PassRecord], title: str = "") -> Table:
    return Table(PASS_COLUMNS, tuple(pass_row(r) for r in records), title)
