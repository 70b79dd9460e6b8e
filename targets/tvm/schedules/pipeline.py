"""kdcc's CPU Relax pipeline: TVM's cpu_generic default with fast math and kdcc's schedules.

`cpu_pipeline(target)` is the cpu_generic default pipeline (library dispatch, legalize,
FoldConstant, FuseOps, FuseTIR, dataflow lowering, finalize) with two changes:

1. sigmoid and tanh legalize to TVM's polynomial `fast_exp`/`fast_tanh` forms (absolute
   error ≤ 3e-7; the default lowers each to one or two scalar `expf` calls that nothing
   vectorizes: the GRU gates of a 256-wide team step cost ~9 µs that way, < 1 µs this way).
   `fast_math=False` keeps TVM's.
2. `KdccCpuSchedule` after FuseTIR gives each PrimFunc kdcc's matmul schedule (`matmul.py`)
   or, failing that, its elementwise schedule (`elementwise.py`). Anything else (argmax,
   gathers, N = 1 dot products, a function neither matches) keeps TVM's default lowering;
   a schedule that fails on a function leaves it as it was, marked with why (`blocks.fell_back`:
   the built library's record lists it, as TVM's default is far slower). Then the weight layout
   rewrites the matmul schedule asks for are split out and folded into the constants.
3. Given a MetaSchedule tuning database (`kdcc compile --tune N`, `kdcc.targets.tvm.tune`), its
   records are applied before (2), so a tuned kernel keeps its tuned schedule and kdcc's
   schedules cover the rest.

`vector_lanes(target)` derives the vector width L from the target's features; `lanes=`
overrides it. Measured with bench/schedule_sweep.py.
"""

from __future__ import annotations

from typing import Any

from kdcc.targets.tvm.schedules.blocks import already_scheduled
from kdcc.targets.tvm.schedules.elementwise import schedule_elementwise
from kdcc.targets.tvm.schedules.matmul import schedule_matmul

__all__ = ["vector_lanes", "fast_math_legalizations", "fused_passes", "cpu_pipeline", "KdccCpuSchedule"]


def _as_target(target: Any):
    import tvm

    return target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)


def vector_lanes(target: Any) -> int:
    """fp32 lanes of one SIMD register of an LLVM target: 16 (AVX-512), 8 (AVX/AVX2), 4 (NEON, SSE)."""
    from tvm.target import codegen

    with _as_target(target):
        if codegen.target_has_features("avx512f"):
            return 16
        if codegen.target_has_features("avx"):
            return 8
    return 4  # NEON (AArch64 always has it; SVE used at 128 bits) and baseline x86-64 SSE2


def fast_math_legalizations() -> dict:
    """LegalizeOps overrides: sigmoid → 1 / (1 + fast_exp(-x)), tanh → fast_tanh (float32 only)."""
    from tvm import te, tirx, topi

    def fast_sigmoid(x):
        e = topi.fast_exp(te.compute(x.shape, lambda *i: -x(*i), name="neg"))
        one = tirx.const(1.0, x.dtype)
        return te.compute(x.shape, lambda *i: one / (one + e(*i)), name="fast_sigmoid", tag="elemwise")

    def legalize(fast, default_op):
        def _legalize(bb, call):
            x = call.args[0]
            if str(getattr(x.ty, "dtype", "")) != "float32":
                return bb.call_te(default_op, x)
            return bb.call_te(fast, x, primfunc_name_hint=fast.__name__)
        return _legalize

    return {"relax.sigmoid": legalize(fast_sigmoid, topi.sigmoid),
            "relax.tanh": legalize(topi.fast_tanh, topi.tanh)}


def fused_passes(target: Any, fast_math: bool = True) -> list:
    """The passes before scheduling: library dispatch, legalization (fast sigmoid/tanh unless
    `fast_math=False`) and fusion. Tuning extracts its tasks after exactly these, so its records
    match the PrimFuncs `cpu_pipeline` schedules."""
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    target = _as_target(target)
    passes = cpu.legalize_passes(target)
    if fast_math:
        passes = [relax.transform.LegalizeOps(fast_math_legalizations())
                  if p.info.name == "LegalizeOps" else p for p in passes]
    return cpu.library_dispatch_passes(target) + passes


def cpu_pipeline(target: Any, lanes: int | None = None, fast_math: bool = True, database: Any = None):
    """TVM's cpu_generic default Relax pipeline with kdcc's CPU schedule (module docstring).

    `database`: a MetaSchedule tuning database directory; its records are applied first and take
    precedence over kdcc's schedule for the kernels they cover (`kdcc.targets.tvm.tune`)."""
    import contextlib

    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    target = _as_target(target)
    lanes = lanes or vector_lanes(target)

    @tvm.transform.module_pass(opt_level=0, name="KdccCpuPipeline")
    def _pipeline(mod, _ctx):
        records = contextlib.nullcontext()
        if database is not None:
            from kdcc.targets.tvm.tune import open_database

            records = open_database(database)
        with target, records:
            tuned = [relax.transform.MetaScheduleApplyDatabase()] if database is not None else []
            seq = tvm.transform.Sequential(
                fused_passes(target, fast_math) + tuned
                + [KdccCpuSchedule(lanes), relax.transform.SplitLayoutRewritePreproc(),
                   relax.transform.FoldConstant(), relax.transform.DeadCodeElimination()]
                + cpu.dataflow_lower_passes(target)
                + cpu.finalize_passes(target))
            return seq(mod)

    return _pipeline


def KdccCpuSchedule(lanes: int):  # noqa: N802 (a TVM pass, named like TVM's)
    """Module pass: the matmul schedule, else the elementwise one, on every PrimFunc (module docstring)."""
    import tvm
    from tvm import tirx

    @tvm.transform.module_pass(opt_level=0, name="KdccCpuSchedule")
    def _schedule(mod, _ctx):
        constants = _constant_params(mod)
        updates = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc) or already_scheduled(func):
                continue
            new = schedule_matmul(func, lanes, constants.get(gv.name_hint, frozenset()))
            if new is None:
                new = schedule_elementwise(func, lanes)
            if new is not None:
                updates[gv] = new
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return _schedule



def _constant_params(mod) -> dict[str, frozenset[int]]:
    """For each PrimFunc: indices of its parameters that get a Relax constant at every call site."""
    import tvm
    from tvm import relax

    seen: dict[str, set[int]] = {}
    call_tir = tvm.ir.Op.get("relax.call_tir")
    constant = getattr(tvm.ir.expr, "GenericConst", tvm.ir.expr.Constant)  # a tensor constant

    def visit(expr):
        if isinstance(expr, relax.Call) and expr.op.same_as(call_tir):
            name = expr.args[0].name_hint
            args = expr.args[1]
            fields = list(args.fields) if isinstance(args, relax.Tuple) else [args]
            const = {i for i, a in enumerate(fields) if isinstance(a, constant)}
            seen[name] = seen[name] & const if name in seen else const

    for _gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return {k: frozenset(v) for k, v in seen.items()}
