"""kdcc's CPU schedule for the small GEMMs and GEMVs of a team step (TVM Relax, LLVM targets).

Why: TVM's default CPU pipeline (`relax.backend.cpu_generic`) legalizes `nn.Linear` into a
matmul PrimFunc with loops (row, out, k): the reduction is innermost and the weight is read
with a stride of N floats, so nothing vectorizes. A 3×256 → 768 GEMM takes ~1.2 ms that way
(< 1 GFLOP/s). dlight's CPU rules help batch-1 GEMVs but not the batch-3 GEMMs of a team
step (n_agents rows × widths 4..768).

What `cpu_pipeline(target)` does: the cpu_generic default pipeline (library dispatch,
legalize, FoldConstant, FuseOps, FuseTIR, dataflow lowering, finalize) plus, right after
FuseTIR, `KdccCpuSchedule`, which rewrites every PrimFunc whose one reduction block is a
matmul `C[rows.., j] += A[rows.., k] * B[.., k, j]` (the weight read contiguous in j, as
FoldConstant leaves a Linear's weight: [in, out]), fused with whatever elementwise epilogue
FuseOps put behind it (bias, relu, ...):

- the output dimension j is padded to a multiple of the vector width L (16 fp32 lanes with
  AVX-512, 8 with AVX2, 4 with SSE or NEON) with `pad_einsum`; the weight's padding copy is
  marked as a layout-rewrite block, split out of the kernel (`SplitLayoutRewritePreproc`)
  and folded into a padded constant (`FoldConstant`), so at run time no padding is copied
  and no lane is masked. Weights that are not constants are not padded (the tail tile keeps
  a predicate instead);
- tiles of j of nv·L outputs (nv ≤ 4 vectors) are the outer loop; inside: the reduction k,
  then the rows (n_agents, unrolled), the nv vectors (unrolled) and the L lanes (vectorized).
  So the accumulators — rows × nv vectors — stay in registers across k, every weight vector
  loaded once serves all rows, and the reduction is never the innermost loop;
  `decompose_reduction` puts the zero-init before k, vectorized;
- the elementwise epilogue (intermediate blocks inlined) is computed per tile, right after
  its reduction, vectorized, so the matmul result never goes back to memory.

Functions it does not recognise (the GRU gate arithmetic, argmax, gathers, N = 1 dot
products) keep TVM's default lowering. Numerics: the same fp32 products summed over k in
the same order per output, so results equal the default build's up to float rounding.

`vector_lanes(target)` derives L from the target's features; pass `lanes=` to override.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEDULED_ATTR", "vector_lanes", "cpu_pipeline", "KdccCpuSchedule", "schedule_matmul"]

SCHEDULED_ATTR = "kdcc.schedule"  # PrimFunc attribute naming the kdcc schedule applied
_PREPROC = "meta_schedule.layout_rewrite_preproc"  # block annotation SplitLayoutRewritePreproc reads
_ACC_VECTORS = 12  # accumulator vector registers a tile may use (AVX-512 and NEON both have 32)
_MAX_VECTORS_PER_TILE = 4
_MAX_UNROLLED_ROWS = 8


def vector_lanes(target: Any) -> int:
    """fp32 lanes of one SIMD register for an LLVM target: 16 (AVX-512), 8 (AVX/AVX2), 4 (NEON, SSE)."""
    import tvm
    from tvm.target import codegen

    target = tvm.target.Target(target) if not isinstance(target, tvm.target.Target) else target
    with target:
        if codegen.target_has_features("avx512f"):
            return 16
        if codegen.target_has_features("avx"):
            return 8
    return 4  # NEON (AArch64 always has it; SVE is used at 128 bits too) and baseline x86-64 SSE2


def cpu_pipeline(target: Any, lanes: int | None = None):
    """TVM's cpu_generic default Relax pipeline with kdcc's matmul schedule after FuseTIR."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    target = tvm.target.Target(target) if not isinstance(target, tvm.target.Target) else target
    lanes = lanes or vector_lanes(target)

    @tvm.transform.module_pass(opt_level=0, name="KdccCpuPipeline")
    def _pipeline(mod, _ctx):
        with target:
            seq = tvm.transform.Sequential(
                cpu.library_dispatch_passes(target)
                + cpu.legalize_passes(target)
                + [KdccCpuSchedule(lanes), relax.transform.SplitLayoutRewritePreproc(),
                   relax.transform.FoldConstant()]
                + cpu.dataflow_lower_passes(target)
                + cpu.finalize_passes(target))
            return seq(mod)

    return _pipeline


def KdccCpuSchedule(lanes: int):  # noqa: N802 (a TVM pass, named like TVM's)
    """Module pass: schedule every matmul-like PrimFunc (see the module docstring)."""
    import tvm
    from tvm import tirx

    @tvm.transform.module_pass(opt_level=0, name="KdccCpuSchedule")
    def _schedule(mod, _ctx):
        constants = _constant_params(mod)
        updates = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc) or _already_scheduled(func):
                continue
            new = schedule_matmul(func, lanes, constants.get(gv.name_hint, frozenset()))
            if new is not None:
                updates[gv] = new
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return _schedule


def _already_scheduled(func) -> bool:
    attrs = func.attrs or {}
    return SCHEDULED_ATTR in attrs or bool(attrs.get("tirx.is_scheduled", False))


def _constant_params(mod) -> dict[str, frozenset[int]]:
    """For each PrimFunc: indices of its parameters that get a Relax constant at every call site."""
    import tvm
    from tvm import relax

    seen: dict[str, set[int]] = {}
    call_tir = tvm.ir.Op.get("relax.call_tir")

    def is_constant(arg) -> bool:  # a tensor constant (weights), not a shape or scalar
        return isinstance(arg, getattr(tvm.ir.expr, "GenericConst", tvm.ir.expr.Constant))

    def visit(expr):
        if isinstance(expr, relax.Call) and expr.op.same_as(call_tir):
            name = expr.args[0].name_hint
            args = expr.args[1]
            fields = list(args.fields) if isinstance(args, relax.Tuple) else [args]
            const = {i for i, a in enumerate(fields) if is_constant(a)}
            seen[name] = seen[name] & const if name in seen else const

    for _gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return {k: frozenset(v) for k, v in seen.items()}


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
# The schedule


def _largest_divisor_at_most(n: int, cap: int) -> int:
    return next(d for d in range(max(1, min(n, cap)), 0, -1) if n % d == 0)


def schedule_matmul(func, lanes: int, constant_params: frozenset[int] = frozenset()):
    """`func` scheduled (see the module docstring), or None when it is not a matmul kdcc knows.

    `constant_params`: indices of the parameters that are Relax constants at every call site
    (weights); only those may be padded through a layout-rewrite block.
    """
    from tvm import s_tir

    try:
        sch = s_tir.Schedule(func)
        root = sch.get_sblock("root")
        blocks = sch.get_child_blocks(root)
    except Exception:  # noqa: BLE001 - not a schedulable S-TIR function
        return None
    reductions = [b for b in blocks if any(int(iv.iter_type) != 0 for iv in sch.get(b).iter_vars)]
    if len(reductions) != 1 or any(sch.get_child_blocks(b) for b in blocks):
        return None
    mm_rv = reductions[0]
    mm = _match_matmul(sch, mm_rv, func)
    if mm is None or mm.n < 2:
        return None
    try:
        _apply(sch, mm_rv, mm, lanes, constant_params)
    except Exception:  # noqa: BLE001 - a shape this schedule cannot handle: keep TVM's default
        return None
    return sch.mod["main"].with_attr(SCHEDULED_ATTR, "matmul")


def _apply(sch, mm_rv, mm: _Matmul, lanes: int, constant_params) -> None:
    mm_name = sch.get(mm_rv).name_hint
    # 1. inline the elementwise epilogue chain up to the block that writes the function output
    epilogue = _inline_epilogue(sch, mm_rv)

    # 2. pad j to a multiple of the vector width (constant weights only)
    n = mm.n
    if n % lanes and mm.b_param is not None and mm.b_param in constant_params:
        loops = sch.get_loops(mm_rv)
        sch.pad_einsum(mm_rv, [1] * (len(loops) - 2) + [lanes, 1])
        for prod in sch.get_producers(mm_rv):
            if sch.get(prod).name_hint != mm_name:
                blk = sch.get(prod)
                if any(r.source.same_as(mm.b_buf) for r in blk.reads):
                    sch.annotate(prod, _PREPROC, 1)
        consumers = sch.get_consumers(mm_rv)
        if len(consumers) == 1:
            unpad = consumers[0]
            if epilogue is not None:
                sch.compute_inline(unpad)
            else:
                epilogue = unpad  # the matmul wrote the output directly
        n = -(-n // lanes) * lanes

    # 3. tile: (jo, k, rows, ji, jv)
    loops = sch.get_loops(mm_rv)
    *row_loops, j, k = loops
    rows = sch.fuse(*row_loops) if len(row_loops) > 1 else (row_loops[0] if row_loops else None)
    if n % lanes == 0:
        vec = lanes
        nv = _largest_divisor_at_most(n // lanes, min(_MAX_VECTORS_PER_TILE, max(1, _ACC_VECTORS // min(mm.rows, _MAX_UNROLLED_ROWS))))
    else:  # unpadded tail: a predicate on the last tile
        vec = lanes
        nv = min(_MAX_VECTORS_PER_TILE, -(-n // lanes))
    jo, ji, jv = sch.split(j, [None, nv, vec])
    if rows is not None and mm.rows > _MAX_UNROLLED_ROWS:
        sch.reorder(rows, jo, k, ji, jv)
        row_inner = None
    elif rows is not None:
        sch.reorder(jo, k, rows, ji, jv)
        row_inner = rows
    else:
        sch.reorder(jo, k, ji, jv)
        row_inner = None

    # 4. the epilogue per tile, right after its reduction
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, jo)
        e_loops = sch.get_loops(epilogue)
        depth = _depth(sch, mm_rv, jo)
        *e_rows, e_j = e_loops[depth:]
        e_o, e_v = sch.split(e_j, [None, vec])
        sch.vectorize(e_v)
        for lp in [*e_rows, e_o]:
            sch.unroll(lp)

    sch.vectorize(jv)
    sch.unroll(ji)
    if row_inner is not None:
        sch.unroll(row_inner)
    init = sch.decompose_reduction(mm_rv, k)
    i_loops = sch.get_loops(init)[_depth(sch, init, jo):]
    sch.vectorize(i_loops[-1])
    for lp in i_loops[:-1]:
        sch.unroll(lp)


def _depth(sch, block_rv, loop_rv) -> int:
    """How many of `block_rv`'s loops are `loop_rv` and the loops around it."""
    target = sch.get(loop_rv)
    loops = sch.get_loops(block_rv)
    return next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(target)) + 1


def _inline_epilogue(sch, mm_rv):
    """Inline the spatial blocks after the matmul into the last one; that block, or None.

    Returns None (and leaves the blocks alone) when the matmul has no epilogue; raises when
    the epilogue is not a single chain of elementwise blocks ending in one output block.
    """
    root = sch.get_sblock("root")
    blocks = sch.get_child_blocks(root)
    names = [sch.get(b).name_hint for b in blocks]
    mm_name = sch.get(mm_rv).name_hint
    after = blocks[names.index(mm_name) + 1:]
    if not after:
        return None
    for blk in after[:-1]:
        sch.compute_inline(blk)
    last = sch.get_child_blocks(root)[-1]
    if any(int(iv.iter_type) != 0 for iv in sch.get(last).iter_vars):
        raise ValueError("reduction after the matmul")
    return last
