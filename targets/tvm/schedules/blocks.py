"""S-TIR block helpers the matmul and elementwise schedules share.

A schedule only takes on PrimFuncs whose blocks sit directly under the root block (what
Relax's legalization and FuseTIR produce for a team step); anything nested is left to TVM.
"""

from __future__ import annotations

__all__ = ["SCHEDULED_ATTR", "top_blocks", "is_spatial", "already_scheduled"]

SCHEDULED_ATTR = "kdcc.schedule"  # PrimFunc attribute: which kdcc schedule was applied


def top_blocks(sch):
    """The blocks directly under the root block; None if any block nests another."""
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    if any(sch.get_child_blocks(b) for b in blocks):
        return None
    return blocks


def is_spatial(sch, block_rv) -> bool:
    return all(int(iv.iter_type) == 0 for iv in sch.get(block_rv).iter_vars)


def already_scheduled(func) -> bool:
    """True when kdcc or TVM (`tirx.is_scheduled`) has scheduled `func`: it is left as it is."""
    attrs = func.attrs or {}
    return SCHEDULED_ATTR in attrs or bool(attrs.get("tirx.is_scheduled", False))
