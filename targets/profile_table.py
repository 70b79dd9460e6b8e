"""The per-layer table of `kdcc profile`: what each node costs on each device of a target.

Rows are computed apart from rendering so that tests and reports can use the
numbers without parsing a terminal table. Free nodes (views, placeholders,
outputs) cost nothing and are left out; the call-overhead row and the total
include everything, so each device's column adds up to its total.

    render_profile_table(profile_rows(named_ops, load_profile("orin")), console)

where `named_ops` are (node name, node.meta["cost"]) in graph order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rich.console import Console
from rich.table import Table

from kdcc.ir.opcost import OpCost
from kdcc.targets.cost_model import Cost, choose_device, estimate
from kdcc.targets.profile import TargetProfile

__all__ = ["ProfileRow", "ProfileRows", "profile_rows", "render_profile_table"]


@dataclass(frozen=True)
class ProfileRow:
    node: str
    kind: str
    flops: int
    param_bytes: int
    act_bytes: int
    fused: bool  # runs inside the previous kernel (see cost_model's fusion rule)
    per_device: dict[str, Cost]  # device name -> latency and energy of this row there


@dataclass(frozen=True)
class ProfileRows:
    target: str
    precision: str
    devices: tuple[str, ...]
    rows: tuple[ProfileRow, ...]
    call: ProfileRow  # the per-step call overhead of each device
    total: ProfileRow
    best_device: str
    reason: str  # why best_device wins (or that it is the only one)


def profile_rows(named_ops: Iterable[tuple[str, OpCost]], profile: TargetProfile,
                 precision: str = "fp32") -> ProfileRows:
    """Per-node and total cost of one team step on every device of `profile`."""
    ops = list(named_ops)
    estimates = {d.name: estimate(ops, d, precision) for d in profile.devices}
    rows = []
    for i, (name, op) in enumerate(ops):
        if op.kind == "free":
            continue
        costs = {dev: est.nodes[i].cost for dev, est in estimates.items()}
        fused = not next(iter(estimates.values())).nodes[i].launches_kernel
        rows.append(ProfileRow(name, op.kind, op.flops, op.param_bytes, op.act_bytes, fused, costs))
    call = ProfileRow("(call)", "overhead", 0, 0, 0, False,
                      {dev: est.call for dev, est in estimates.items()})
    total = ProfileRow("total", "", sum(op.flops for _, op in ops), sum(op.param_bytes for _, op in ops),
                       sum(op.act_bytes for _, op in ops), False,
                       {dev: est.total for dev, est in estimates.items()})
    best, reason = choose_device(ops, profile, precision)
    return ProfileRows(profile.name, precision, tuple(estimates), tuple(rows), call, total, best.name, reason)


def _cells(row: ProfileRow, devices: tuple[str, ...]) -> list[str]:
    kind = f"{row.kind} (fused)" if row.fused else row.kind
    cells = [row.node, kind, f"{row.flops:,}", f"{row.param_bytes:,}", f"{row.act_bytes:,}"]
    for dev in devices:
        cost = row.per_device[dev]
        cells += [f"{cost.latency_us:,.3f}", f"{cost.energy_uj:,.3f}"]
    return cells


def render_profile_table(table: ProfileRows, console: Console | None = None) -> Table:
    """Print `table` as a rich table (to `console`, or stdout) and return it."""
    out = Table(title=f"kdcc profile: target {table.target} ({table.precision}, one team step)",
                caption=f"best device: {table.reason}")
    out.add_column("node", overflow="fold")
    out.add_column("kind", overflow="fold")
    # Numbers never wrap or get cut: on a narrow terminal the names fold instead.
    for header in ("FLOPs", "param B", "act B", *(f"{dev} {unit}" for dev in table.devices for unit in ("µs", "µJ"))):
        out.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for row in table.rows:
        out.add_row(*_cells(row, table.devices))
    out.add_section()
    out.add_row(*_cells(table.call, table.devices))
    out.add_row(*_cells(table.total, table.devices), style="bold")
    (console or Console()).print(out)
    return out
