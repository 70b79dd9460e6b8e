"""S-TIR block helpers the matmul and elementwise schedules share.

A schedule only takes on PrimFuncs whose blocks sit directly under the root block (what
Relax's legalization and FuseTIR produce for a team step); anything nested is left to TVM.
A schedule that fails on a function it took on leaves the function as it was, marked with why
(`fell_back`): TVM's default schedule runs it, and the build reports it (`BuiltLibrary.fallbacks`).
"""

from __future__ import annotations

__all__ = ["SCHEDULED_ATTR", "FALLBACK_ATTR", "top_blocks", "is_spatial", "already_scheduled", "fell_back"]

SCHEDULED_ATTR = "kdcc.schedule"  # PrimFunc attribute: which kdcc schedule was applied
FALLBACK_ATTR = "kdcc.schedule_fallback"  # PrimFunc attribute: why a kdcc schedule failed on it


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


def fell_back(func, schedule: str, error: Exception):
    """`func` unchanged but marked: `schedule` failed on it, so TVM's default schedule runs it (for a GEMM
    ~40-50x slower). The attribute survives the pipeline; `build_library` reads it into the library's record."""
    first = str(error).strip().splitlines()
    reason = f"{schedule} schedule failed: {type(error).__name__}" + (f": {first[0][:200]}" if first else "")
    return func.with_attr(FALLBACK_ATTR, reason)
