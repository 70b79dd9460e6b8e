"""The elementwise schedule: a fused elementwise PrimFunc as one vectorized loop nest.

What it takes: PrimFuncs with spatial blocks only (GRU gate arithmetic, input concatenation,
one-hots, ...). Blocks that write no function output are inlined into the one output block,
whose last dimension is vectorized (split by the vector width L when it is longer): TVM's
default leaves each block its own scalar loop nest and its intermediates in memory.
"""

from __future__ import annotations

from kdcc.targets.tvm.schedules.blocks import SCHEDULED_ATTR, fell_back, is_spatial, top_blocks

__all__ = ["schedule_elementwise"]


def schedule_elementwise(func, lanes: int):
    """`func` with its spatial blocks inlined into the one output block, the last dim vectorized.

    None when the function has a reduction, or more than one block is left after inlining
    the blocks that write no function output; `func` marked by `fell_back` when the schedule failed on it.
    """
    from tvm import s_tir

    try:
        sch = s_tir.Schedule(func)
        blocks = top_blocks(sch)
    except Exception:  # noqa: BLE001 - not a schedulable S-TIR function
        return None
    if not blocks or not all(is_spatial(sch, b) for b in blocks):
        return None
    params = list(func.params)
    try:
        for blk in blocks:
            writes = sch.get(blk).writes
            if not any(w.source.same_as(p) for w in writes for p in params):
                sch.compute_inline(blk)
        left = top_blocks(sch)
        if len(left) != 1:
            return None
        (out,) = left
        j = sch.get_loops(out)[-1]
        n = int(sch.get(j).extent)
        if n < 2:
            return None
        if n <= lanes:
            sch.vectorize(j)
            return sch.mod["main"].with_attr(SCHEDULED_ATTR, "elementwise")
        # A ragged last vector keeps a predicate: TVM scalarizes that loop and LLVM vectorizes
        # it again with masked stores where the ISA has them (AVX-512). Partitioning the tail
        # off (loop_partition) or unrolling the rows ran no faster and compiled 2-5x slower.
        _, v = sch.split(j, [None, lanes])
        sch.vectorize(v)
    except Exception as e:  # noqa: BLE001 - keep TVM's default lowering, recorded
        return fell_back(func, "elementwise", e)
    return sch.mod["main"].with_attr(SCHEDULED_ATTR, "elementwise")
