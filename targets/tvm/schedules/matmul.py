"""The matmul schedule: match `C[rows.., j] += A[rows.., k] * B[.., k, j]`, then tile it for SIMD.

Why: TVM's default CPU legalization of `nn.Linear` loops (row, out, k): the reduction is
innermost and the weight is read with a stride of N floats, so nothing vectorizes (a
3×256 → 768 GEMM takes ~0.5–1.2 ms, < 2 GFLOP/s). dlight's CPU rules help batch-1 GEMVs
but make the batch-3 GEMMs of a team step (n_agents rows × widths 4..768) slower.

What it matches: one reduction block whose weight is read contiguous in j, as FoldConstant
leaves a Linear's weight ([in, out]), with the elementwise epilogue FuseOps put behind it
(bias, relu, ...). How it schedules that:

- j is padded to a multiple of the vector width L (16 fp32 lanes with AVX-512, 8 with
  AVX2, 4 with SSE or NEON) by `pad_einsum`, and a 2-D weight is packed tile by tile,
  [k, j] → [j / tile, k, j % tile], so each tile streams one contiguous block. Both are
  layout-rewrite blocks that are split out of the kernel (`SplitLayoutRewritePreproc`)
  and folded into the constant (`FoldConstant`): nothing is copied or masked at run
  time. A weight that is not a constant is neither padded nor packed (its vectors are
  the widest power of two ≥ 4 dividing N, else the last tile keeps a predicate);
- loops (jo, k, rows, ji, jv): tiles of nv·L outputs outside, the reduction k inside
  them, then the rows (n_agents, unrolled), nv vectors (unrolled, nv ≤ 4 and rows·nv ≤
  12 accumulators) and the L lanes (vectorized). The accumulators stay in registers
  across k, each weight vector loaded once serves every row, the reduction is never
  innermost; `decompose_reduction` puts the zero-init before k, vectorized;
- the epilogue (its intermediate blocks inlined) runs per tile right after the
  reduction, vectorized, so the matmul result never goes back to memory.

Numerics: every output sums the same fp32 products over k in the same order as TVM's
default build, so the matmuls agree with it up to rounding.
"""

from __future__ import annotations

from kdcc.targets.tvm.schedules.blocks import SCHEDULED_ATTR, fell_back, is_spatial, top_blocks

__all__ = ["schedule_matmul"]

_PREPROC = "meta_schedule.layout_rewrite_preproc"  # block annotation SplitLayoutRewritePreproc reads
_ACC_VECTORS = 12  # accumulator vector registers per tile (AVX-512 and NEON have 32)
_MAX_VECTORS_PER_TILE = 4
_MAX_UNROLLED_ROWS = 8


# --------------------------------------------------------------------------------------------
# Recognising a matmul block


class _Matmul:
    """What the schedule needs to know about the reduction block of a matmul PrimFunc."""

    def __init__(self, out_buf, a_buf, b_buf, rows: int, n: int, b_param: int | None):
        self.out_buf, self.a_buf, self.b_buf = out_buf, a_buf, b_buf
        self.rows, self.n, self.b_param = rows, n, b_param


def _strip_cast(e):
    from tvm import tirx

    while isinstance(e, tirx.Cast):
        e = e.value
    return e


def _is_var(e, var) -> bool:
    return hasattr(e, "same_as") and e.same_as(var)


def _match_matmul(sch, block_rv, func) -> _Matmul | None:
    """The matmul facts of `block_rv`, or None if it is not `C[s.., j] += A[.., k..] * B[.., k, j]`."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad

    block = sch.get(block_rv)
    spatial = [iv for iv in block.iter_vars if int(iv.iter_type) == 0]
    reduce = [iv for iv in block.iter_vars if int(iv.iter_type) == 2]
    if len(reduce) != 1 or not spatial or len(spatial) + 1 != len(block.iter_vars):
        return None
    if block.init is None or not isinstance(block.init, tirx.BufferStore):
        return None
    init = _strip_cast(block.init.value)
    if not isinstance(init, tirx.FloatImm) or float(init.value) != 0.0:
        return None
    store = block.body
    if not isinstance(store, tirx.BufferStore) or not str(store.buffer.dtype).startswith("float"):
        return None
    idx = list(store.indices)
    if len(idx) != len(spatial) or not all(_is_var(i, iv.var) for i, iv in zip(idx, spatial)):
        return None
    value = store.value
    if not isinstance(value, tirx.Add):
        return None
    acc, prod = value.a, value.b
    if not (isinstance(acc, TensorLoad) and acc.source.same_as(store.buffer)):
        acc, prod = prod, acc
    if not (isinstance(acc, TensorLoad) and acc.source.same_as(store.buffer)
            and all(_is_var(i, iv.var) for i, iv in zip(acc.indices, spatial))):
        return None
    prod = _strip_cast(prod)
    if not isinstance(prod, tirx.Mul):
        return None
    x, y = _strip_cast(prod.a), _strip_cast(prod.b)
    if not (isinstance(x, TensorLoad) and isinstance(y, TensorLoad)):
        return None
    j, k = spatial[-1].var, reduce[0].var

    def plain(load):  # every index a plain block var (an einsum access)
        return all(isinstance(i, tirx.Var) for i in load.indices)

    def has(load, var):
        return any(_is_var(i, var) for i in load.indices)

    if has(x, j):
        x, y = y, x
    # y: the "weight": j last (contiguous), k present; x: no j, k present
    if not (plain(x) and plain(y) and has(y, j) and _is_var(y.indices[-1], j) and has(y, k)
            and has(x, k) and not has(x, j)):
        return None
    for iv in block.iter_vars:
        if not (isinstance(iv.dom.min, tirx.IntImm) and int(iv.dom.min) == 0
                and isinstance(iv.dom.extent, tirx.IntImm)):
            return None
    # loops must bind the block vars one to one, in order
    loops = sch.get_loops(block_rv)
    realize = sch.get(loops[-1]).body if loops else None
    if realize is None or len(loops) != len(block.iter_vars) or not hasattr(realize, "iter_values"):
        return None
    if not all(_is_var(v, sch.get(lp).loop_var) for v, lp in zip(realize.iter_values, loops)):
        return None
    if not _is_trivial_true(realize.predicate):
        return None
    rows = 1
    for iv in spatial[:-1]:
        rows *= int(iv.dom.extent)
    b_param = next((i for i, p in enumerate(func.params) if p.same_as(y.source)), None)
    return _Matmul(store.buffer, x.source, y.source, rows, int(spatial[-1].dom.extent), b_param)


def _is_trivial_true(pred) -> bool:
    from tvm import tirx

    return isinstance(pred, tirx.IntImm) and int(pred.value) == 1


# --------------------------------------------------------------------------------------------
# Scheduling it


def _largest_divisor_at_most(n: int, cap: int) -> int:
    return next(d for d in range(max(1, min(n, cap)), 0, -1) if n % d == 0)


def schedule_matmul(func, lanes: int, constant_params: frozenset[int] = frozenset()):
    """`func` scheduled as a matmul (module docstring), None when it is not one kdcc knows, or `func`
    marked by `fell_back` when it is one and the schedule failed on it.

    `constant_params`: indices of the parameters that are Relax constants at every call site
    (weights); only those are padded through a layout-rewrite block.
    """
    from tvm import s_tir

    try:
        sch = s_tir.Schedule(func)
        blocks = top_blocks(sch)
    except Exception:  # noqa: BLE001 - not a schedulable S-TIR function
        return None
    if not blocks:
        return None
    reductions = [b for b in blocks if not is_spatial(sch, b)]
    if len(reductions) != 1:
        return None
    mm_rv = reductions[0]
    mm = _match_matmul(sch, mm_rv, func)
    if mm is None or mm.n < 2:
        return None
    try:
        _schedule_matmul(sch, mm_rv, mm, lanes, constant_params)
    except Exception as e:  # noqa: BLE001 - a shape this schedule cannot handle: TVM's default, recorded
        return fell_back(func, "matmul", e)
    return sch.mod["main"].with_attr(SCHEDULED_ATTR, "matmul")


def _schedule_matmul(sch, mm_rv, mm: _Matmul, lanes: int, constant_params,
                     nv_cap: int = _MAX_VECTORS_PER_TILE, pack: bool = True) -> None:
    # 1. inline the elementwise epilogue chain into the block that writes the output
    epilogue = _inline_epilogue(sch, mm_rv)

    # 2. pad j to a multiple of the vector width (constant weights only)
    n = mm.n
    if n % lanes and mm.b_param is not None and mm.b_param in constant_params:
        loops = sch.get_loops(mm_rv)
        sch.pad_einsum(mm_rv, [1] * (len(loops) - 2) + [lanes, 1])
        for prod in sch.get_producers(mm_rv):
            if any(r.source.same_as(mm.b_buf) for r in sch.get(prod).reads):
                sch.annotate(prod, _PREPROC, 1)  # weight padding: folded at compile time
        (unpad,) = sch.get_consumers(mm_rv)
        if epilogue is not None:
            sch.compute_inline(unpad)
        else:
            epilogue = unpad  # the matmul wrote the output itself
        n = -(-n // lanes) * lanes

    # 3. tile: (jo, k, rows, ji, jv)
    *row_loops, j, k = sch.get_loops(mm_rv)
    rows = sch.fuse(*row_loops) if len(row_loops) > 1 else (row_loops[0] if row_loops else None)
    unrolled_rows = min(mm.rows, _MAX_UNROLLED_ROWS)
    nv_max = min(nv_cap, max(1, _ACC_VECTORS // unrolled_rows))
    # vectors of L lanes, or (n not padded: a non-constant weight) of the widest power of two
    # ≥ 4 dividing n, e.g. 8 for n = 8 or 40 with L = 16; failing that, a ragged last tile
    vec = next((v for v in (lanes, lanes // 2, lanes // 4) if v >= 4 and n % v == 0), lanes)
    nv = _largest_divisor_at_most(n // vec, nv_max) if n % vec == 0 else min(nv_max, -(-n // vec))
    jo, ji, jv = sch.split(j, [None, nv, vec])
    if rows is not None and mm.rows > _MAX_UNROLLED_ROWS:
        sch.reorder(rows, jo, k, ji, jv)  # many rows: one row at a time
        rows = None
    elif rows is not None:
        sch.reorder(jo, k, rows, ji, jv)
    else:
        sch.reorder(jo, k, ji, jv)

    if pack and mm.b_param in constant_params and n % vec == 0 and len(mm.b_buf.shape) == 2:
        tile = nv * vec
        pre = [p for p in sch.get_producers(mm_rv) if _PREPROC in sch.get(p).annotations]
        if not pre:
            idx = next(i for i, r in enumerate(sch.get(mm_rv).reads) if r.source.same_as(mm.b_buf))
            cr = sch.cache_read(mm_rv, idx, "global")
            sch.annotate(cr, _PREPROC, 1)
            pre = [cr]
        # [k, j] → [j // tile, k, j % tile]: each tile streams one contiguous block of weights
        wbuf = sch.get(pre[0]).writes[0].source
        widx = next(i for i, r in enumerate(sch.get(mm_rv).reads) if r.source.same_as(wbuf))
        sch.transform_layout(mm_rv, ("read", widx), lambda kk, jj: [jj // tile, kk, jj % tile])

    # 4. the epilogue of each tile right after its reduction
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, jo)
        *e_rows, e_j = sch.get_loops(epilogue)[_depth(sch, mm_rv, jo):]
        e_o, e_v = sch.split(e_j, [None, vec])
        sch.vectorize(e_v)
        for lp in [*e_rows, e_o]:
            sch.unroll(lp)

    sch.vectorize(jv)
    sch.unroll(ji)
    if rows is not None:
        sch.unroll(rows)
    init = sch.decompose_reduction(mm_rv, k)
    *i_outer, i_v = sch.get_loops(init)[_depth(sch, init, jo):]
    sch.vectorize(i_v)
    for lp in i_outer:
        sch.unroll(lp)


def _depth(sch, block_rv, loop_rv) -> int:
    """How many of `block_rv`'s loops are `loop_rv` and the loops around it."""
    target = sch.get(loop_rv)
    loops = sch.get_loops(block_rv)
    return next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(target)) + 1


def _inline_epilogue(sch, mm_rv):
    """Inline the blocks after the matmul into the last one and return it (None: no epilogue).

    Raises when they are not elementwise blocks that inline (the caller then gives up).
    """
    blocks = top_blocks(sch)
    mm_name = sch.get(mm_rv).name_hint
    names = [sch.get(b).name_hint for b in blocks]
    after = blocks[names.index(mm_name) + 1:]
    if not after:
        return None
    for blk in after[:-1]:
        sch.compute_inline(blk)
    last = after[-1]
    if not is_spatial(sch, last):
        raise ValueError("a reduction after the matmul")
    return last
