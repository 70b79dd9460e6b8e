"""A lowered step at a lower precision: fp16 or int8 arithmetic inside, the fp32/int64 interface kept.

`apply_precision(mod, precision, samples)` is the one hook between lowering and the build: it takes
the Relax module `lowering.to_relax` made and returns the module to build. The functions' parameters
and results keep their dtypes, so the C API, the runtime and `HostPolicy` do not change.

- fp32: the module as it is.
- fp16: `relax.transform.ToMixedPrecision(out_dtype="float32")`: every matmul reads float16 inputs
  (the weights are stored as float16 constants: half the bytes) and accumulates in float32, as the
  Ampere Tensor Cores do; the elementwise ops that follow (bias, GRU gates, argmax) stay float32.
  On aarch64 (`+fullfp16`) the casts are single FCVT instructions; x86 has no fp16 arithmetic.
- int8: each matmul by a constant weight (every Linear, after FoldConstant left its weight as
  [..., in, out]) becomes real integer arithmetic:

      x_q = clip(round(x / s_x), -127, 127) as int8          s_x = max|x| / 127 over the calibration samples
      W_q = round(W / s_w) as int8 constant                  s_w = max_k |W[k, j]| / 127, one per output j
      y   = float(x_q @ W_q, accumulated in int32) * (s_x · s_w)

  Activations are calibrated per matmul on `samples` (inputs the step sees on the dataset): a
  calibration build returns every matmul's input, run once per sample on this CPU. Bias adds,
  gates, argmax stay float32. Weights are symmetric per output channel, activations per tensor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kdcc.core.errors import KdccError

__all__ = ["PRECISIONS", "apply_precision", "int8_sites"]

PRECISIONS = ("fp32", "fp16", "int8")
_QMAX = 127.0


def _is_weight_matmul(expr) -> bool:
    """A matmul whose right operand is a constant (a Linear's weight after FoldConstant)."""
    import tvm
    from tvm import relax

    constant = getattr(tvm.ir.expr, "GenericConst", tvm.ir.expr.Constant)  # a tensor constant
    return (isinstance(expr, relax.Call) and getattr(expr.op, "name", "") == "relax.matmul"
            and isinstance(expr.args[1], constant) and expr.args[1].value.dtype == "float32")


def int8_sites(func) -> list:
    """The float32 matmuls by a constant weight of a Relax function, in binding order: (input, weight)."""
    from tvm import relax

    sites = []
    for block in func.body.blocks:
        for binding in block.bindings:
            if isinstance(binding, relax.VarBinding) and _is_weight_matmul(binding.value):
                sites.append((binding.value.args[0], binding.value.args[1]))
    return sites


def _calibrate(mod, samples: Sequence[tuple]) -> list[float]:
    """max |input| of every weight matmul of `main` over `samples` (tuples of numpy inputs)."""
    import tvm
    from tvm import relax

    flat = relax.transform.ToNonDataflow()(mod)  # matmul inputs become plain vars a function can return
    func = flat["main"]
    xs = [x for x, _ in int8_sites(func)]
    if not xs:
        return []
    body = relax.BlockBuilder().normalize(relax.SeqExpr(func.body.blocks, relax.Tuple(xs)))
    calib = relax.Function(func.params, body)
    calib_mod = tvm.IRModule({"main": calib.with_attr("global_symbol", "main")})
    exe = relax.build(calib_mod, tvm.target.Target("llvm"))
    vm = relax.VirtualMachine(exe, tvm.cpu())
    amax = np.zeros(len(xs))
    for sample in samples:
        outs = vm["main"](*(tvm.runtime.tensor(np.ascontiguousarray(a)) for a in sample))
        amax = np.maximum(amax, [float(np.max(np.abs(o.numpy()))) if o.numpy().size else 0.0 for o in outs])
    return [float(a) for a in amax]


def _int8_function(func, amax: list[float]):
    """`func` with its i-th weight matmul in int8 arithmetic, activation scale amax[i] / 127."""
    from tvm import relax

    listed = int8_sites(func)
    sites = {x: i for i, (x, _) in enumerate(listed)}  # matmuls sharing an input share its scale

    @relax.expr_functor.mutator
    class Quantize(relax.PyExprMutator):
        def __init__(self):
            super().__init__()
            self.done = 0

        def visit_call_(self, call):
            if not _is_weight_matmul(call) or call.args[0] not in sites:
                return super().visit_call_(call)
            i = sites[call.args[0]]
            x = self.visit_expr(call.args[0])
            s_x = max(amax[i], 1e-12) / _QMAX
            w = call.args[1].value.numpy()
            s_w = np.maximum(np.abs(w).max(axis=-2, keepdims=True), 1e-12) / _QMAX  # [..., 1, out]
            w_q = np.clip(np.round(w / s_w), -_QMAX, _QMAX).astype("int8")
            op, emit = relax.op, self.builder_.emit
            x_q = emit(op.astype(op.clip(op.round(op.multiply(x, relax.const(1.0 / s_x, "float32"))),
                                         -_QMAX, _QMAX), "int8"))
            acc = emit(op.matmul(x_q, relax.const(w_q), out_dtype="int32"))
            self.done += 1
            return op.multiply(op.astype(acc, "float32"), relax.const((s_x * s_w).astype("float32")))

    quantize = Quantize()
    new = quantize.visit_expr(func)
    if quantize.done != len(listed):
        raise KdccError(f"int8: quantised {quantize.done} of {len(listed)} matmuls")
    return new


def apply_precision(mod, precision: str, samples: Sequence[tuple] = ()):
    """The Relax module to build for `precision` (module docstring); `samples` calibrate int8."""
    from tvm import relax

    if precision not in PRECISIONS:
        raise KdccError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return mod
    mod = relax.transform.FoldConstant()(mod)  # a Linear's transpose folds into its weight constant
    if precision == "fp16":
        return relax.transform.FoldConstant()(relax.transform.ToMixedPrecision(out_dtype="float32")(mod))
    if not samples:
        raise KdccError("int8: no calibration samples (the compile's dataset gives them)")
    amax = _calibrate(mod, samples)
    names = {gv.name_hint for gv in mod.get_global_vars()}
    for name in ("main", "main_packed"):  # the same graph imported twice: the same matmuls in order
        if name not in names:
            continue
        func = mod[name]
        shapes = [tuple(w.value.shape) for _, w in int8_sites(func)]
        if len(shapes) != len(amax):
            raise KdccError(f"int8: function {name} has {len(shapes)} weight matmuls, main {len(amax)}")
        mod[name] = _int8_function(func, amax)
    return mod
