"""The VM-free step's plan: what the Relax VM would do on each call, read once at compile time.

After kdcc's CPU pipeline (`schedules.cpu_pipeline`), a step's Relax `main` is straight-line
code: argument checks, `alloc_storage` / `alloc_tensor` from a static memory plan, reshapes
(views), one destination-passing call per compiled kernel, and the output tuple. Nothing in
it depends on the inputs' values, so the whole call can be fixed at create time: the
storages allocated once, every tensor's shape and address known, the kernels called in
order. `step_plan` reads that program into a `StepPlan`; `direct_source` writes it as C.

Anything else in `main` (control flow, dynamic shapes, a VM builtin kdcc does not know)
raises `DirectUnsupported`: the step keeps its VM library alone, and the bundle says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DirectUnsupported", "Tensor", "KernelCall", "StepPlan", "step_plan"]

# VM bookkeeping with nothing to do once shapes and dtypes are fixed at compile time
_SKIPPED_BUILTINS = ("vm.builtin.check_tensor_info", "vm.builtin.match_shape", "vm.builtin.null_value")
_SKIPPED_OPS = ("relax.vm.kill_object", "relax.null_value")


class DirectUnsupported(Exception):
    """The step's program has something the VM-free form cannot express (the message says what)."""


@dataclass(frozen=True)
class Tensor:
    """A tensor of the step: where its bytes live (`kind` input | storage | constant) and its layout."""

    name: str
    kind: str
    index: int  # input number, storage number or constant number
    offset: int  # bytes into that storage
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class KernelCall:
    kernel: str  # the PrimFunc's name: its packed symbol is `__tvm_ffi_<kernel>`
    args: tuple[int, ...]  # indices into StepPlan.tensors


@dataclass
class StepPlan:
    inputs: list[int] = field(default_factory=list)  # tensor indices, in parameter order
    outputs: list[int] = field(default_factory=list)  # tensor indices, in result order
    tensors: list[Tensor] = field(default_factory=list)
    storages: list[int] = field(default_factory=list)  # bytes of each planned storage
    constants: list[np.ndarray] = field(default_factory=list)
    calls: list[KernelCall] = field(default_factory=list)


def _shape(expr) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in expr.values)
    except (TypeError, ValueError, AttributeError):
        raise DirectUnsupported(f"a dynamic shape ({expr})") from None


class _Reader:
    def __init__(self):
        self.plan = StepPlan()
        self.by_var: dict[object, int] = {}  # Relax var -> tensor index (or storage index for storages)
        self.storage_of: dict[object, int] = {}
        self.constant_ids: list[tuple[object, int]] = []  # (constant node, tensor index)

    def tensor(self, name: str, kind: str, index: int, offset: int, shape, dtype: str) -> int:
        self.plan.tensors.append(Tensor(name, kind, index, offset, tuple(shape), dtype))
        return len(self.plan.tensors) - 1

    def operand(self, expr) -> int:
        from tvm import relax

        if isinstance(expr, relax.Var):
            if expr not in self.by_var:
                raise DirectUnsupported(f"{expr.name} is not a tensor of the static plan")
            return self.by_var[expr]
        data = getattr(expr, "value", None)  # a tensor constant (tvm.ir.expr.GenericConst)
        if data is None or not hasattr(data, "numpy"):
            raise DirectUnsupported(f"a kernel argument of type {type(expr).__name__}")
        for known, index in self.constant_ids:  # the same constant node, passed to several kernels
            if known.same_as(expr):
                return index
        array = np.ascontiguousarray(data.numpy())
        self.plan.constants.append(array)
        index = self.tensor(f"c{len(self.plan.constants) - 1}", "constant", len(self.plan.constants) - 1, 0,
                            array.shape, str(array.dtype))
        self.constant_ids.append((expr, index))
        return index

    def bind(self, var, value) -> None:
        import tvm
        from tvm import relax

        if isinstance(value, relax.Tuple):
            self.by_var[var] = [self.operand(f) for f in value.fields]  # the result tuple
            return
        if isinstance(value, relax.Var):
            self.by_var[var] = self.by_var[value]
            return
        if not isinstance(value, relax.Call):
            raise DirectUnsupported(f"a binding of type {type(value).__name__}")
        op = value.op
        if isinstance(op, relax.ExternFunc):
            self.builtin(var, str(op.global_symbol), value.args)
        elif isinstance(op, tvm.ir.GlobalVar):
            self.plan.calls.append(KernelCall(op.name_hint, tuple(self.operand(a) for a in value.args)))
        elif isinstance(op, tvm.ir.Op):
            self.vm_op(var, op.name, value.args)
        else:
            raise DirectUnsupported(f"a call of {type(op).__name__}")

    def builtin(self, var, name: str, args) -> None:
        if name in _SKIPPED_BUILTINS:
            return
        if name == "vm.builtin.reshape":  # a view: same bytes, new shape
            src = self.plan.tensors[self.operand(args[0])]
            self.by_var[var] = self.tensor(var.name, src.kind, src.index, src.offset, _shape(args[1]), src.dtype)
            return
        raise DirectUnsupported(f"the VM builtin {name}")

    def vm_op(self, var, name: str, args) -> None:
        if name in _SKIPPED_OPS:
            return
        if name == "relax.vm.alloc_storage":
            (size,) = _shape(args[0])
            self.plan.storages.append(int(size))
            self.storage_of[var] = len(self.plan.storages) - 1
            return
        if name == "relax.vm.alloc_tensor":
            storage, offset, shape, dtype = args[0], int(args[1]), _shape(args[2]), str(args[3].value)
            if storage not in self.storage_of:
                raise DirectUnsupported(f"{var.name} is allocated from an unknown storage")
            t = self.tensor(var.name, "storage", self.storage_of[storage], offset, shape, dtype)
            if offset + self.plan.tensors[t].nbytes > self.plan.storages[self.storage_of[storage]]:
                raise DirectUnsupported(f"{var.name} does not fit its storage")
            self.by_var[var] = t
            return
        raise DirectUnsupported(f"the operator {name}")


def step_plan(func) -> StepPlan:
    """The plan of a lowered Relax function (`main` after the CPU pipeline): see the module docstring."""
    from tvm import relax

    reader = _Reader()
    for i, param in enumerate(func.params):
        ty = param.ty
        if not hasattr(ty, "shape") or ty.shape is None:
            raise DirectUnsupported(f"parameter {param.name} is not a tensor")
        reader.by_var[param] = reader.tensor(param.name, "input", i, 0, _shape(ty.shape), str(ty.dtype))
        reader.plan.inputs.append(reader.by_var[param])
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        raise DirectUnsupported("a body that is not straight-line code")
    for block in body.blocks:
        for binding in block.bindings:
            if not isinstance(binding, relax.VarBinding):
                raise DirectUnsupported(f"a {type(binding).__name__}")
            reader.bind(binding.var, binding.value)
    result = body.body
    out = reader.by_var.get(result) if isinstance(result, relax.Var) else None
    if out is None:
        raise DirectUnsupported("a result that is not a tensor or a tuple of tensors")
    reader.plan.outputs = list(out) if isinstance(out, list) else [out]
    return reader.plan
