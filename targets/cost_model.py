"""Roofline cost of one team step on one device, node by node.

The IR annotator gives every fx node an `OpCost` (kind, FLOPs, parameter bytes,
activation bytes). This module turns a sequence of them, in topological order,
into latency and energy on a `DeviceProfile`:

    kernel latency = max(flops / peak[precision], bytes / bandwidth) + kernel_overhead
    step latency   = call_overhead + sum of kernel latencies
    energy         = flops * pJ/FLOP + bytes * pJ/byte + static_power * latency

The call overhead (runtime dispatch, synchronisation, input/output copies) is paid
once per step and reported apart from the nodes, so node costs plus `call` make
the total.

The overheads are those of what runs. On a CPU a robot — and the team step's C
API — runs the VM-free library (kdcc's plan of the lowered step as plain C:
one function call, kernels called directly), whose overheads are a profile's
`direct_call_overhead_us` / `direct_kernel_overhead_us`; a GPU (and a CPU
profile without them) runs the Relax VM, `call_overhead_us` /
`kernel_overhead_us`. Pricing a robot's step as the VM's made every `--keep`
candidate cost within 0.2% of the others (the VM's fixed cost dwarfed the
arithmetic), so "cheapest" was decided by noise. `runtime="vm"` asks for the
VM's price where the VM is what is timed (calibration, `HostPolicy`).

Fusion rule. TVM's default Relax pipeline (FuseOps, FuseTIR) fuses elementwise
operators into the kernel of their producer, so the model does the same on the
unfused graph: an `elementwise` node that comes after a kernel-launching node,
with only `free` nodes in between, runs inside that kernel. It adds its FLOPs and
its parameter bytes (a bias, a gate weight) but no kernel overhead and no
activation traffic: the fused kernel writes the elementwise result instead of
the producer's, and the producer's activation bytes already count that write.
An elementwise operand that comes from elsewhere (a residual) is not counted: a
small under-estimate. An elementwise node with no kernel before it launches its
own. `gemm`, `reduce` and `data` nodes always launch a kernel; `free` nodes
(views, placeholders, constants, outputs) cost nothing. The sequence has no
edges, so "after" means after in topological order, which for the chains of
Linear -> activation that policies are made of is the producer.

A fused node's latency is its own roofline time; summing roofline times over a
fused group, rather than taking the roofline of the group, over-estimates a
little and keeps node costs additive.

Energy per FLOP is one number per device, the fp32 one; lower precisions use it
too, which over-estimates their energy. Bytes are taken as annotated (float32);
`at_precision` restates them for a step compiled at fp16 or int8 (`--precision`),
whose FLOPs `estimate(..., precision)` then takes at that precision's peak. The
peak is the device's: where the compiled step does not reach it (fp16 matmuls
with fp32 accumulation on a CPU without FP16FML), the estimate is optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable

from kdcc.core.errors import KdccError
from kdcc.ir.opcost import OP_KINDS, OpCost
from kdcc.targets.profile import DeviceProfile, TargetProfile

__all__ = ["Cost", "NodeCost", "Estimate", "estimate", "choose_device", "step_cost", "round_width", "WEIGHT_BYTES",
           "at_precision"]

WEIGHT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}  # bytes per weight as the compiled step stores it


@dataclass(frozen=True)
class Cost:
    """What one node (or a whole step) costs; adds up node by node."""

    flops: int = 0
    bytes: int = 0  # bytes moved to or from DRAM
    latency_us: float = 0.0
    energy_uj: float = 0.0

    ZERO: ClassVar[Cost]

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.bytes + other.bytes,
                    self.latency_us + other.latency_us, self.energy_uj + other.energy_uj)


Cost.ZERO = Cost()


@dataclass(frozen=True)
class NodeCost:
    name: str
    kind: str
    cost: Cost
    launches_kernel: bool  # False for free nodes and for elementwise nodes fused into a kernel


@dataclass(frozen=True)
class Estimate:
    """Per-node costs of one team step on one device, the call overhead and the total."""

    device: str
    precision: str
    runtime: str  # "direct" (the VM-free library) or "vm" (the Relax VM): whose overheads are priced
    nodes: tuple[NodeCost, ...]
    call: Cost  # the device's per-step call overhead (latency and static energy)
    total: Cost
    overhead_us: float  # call overhead + kernel overheads: the part of latency that is not roofline

    @property
    def kernels(self) -> int:
        return sum(n.launches_kernel for n in self.nodes)

    @property
    def roofline_us(self) -> float:
        return self.total.latency_us - self.overhead_us

    def node(self, name: str) -> Cost:
        for n in self.nodes:
            if n.name == name:
                return n.cost
        raise KeyError(name)


def runs_direct(device: DeviceProfile, runtime: str | None = None) -> bool:
    """Whether a step on `device` is priced as the VM-free library's (CPU devices whose profile gives its
    overheads) rather than the Relax VM's; `runtime` ("direct" / "vm") forces one where it exists."""
    has_direct = device.kind == "cpu" and device.direct_call_overhead_us is not None
    if runtime not in (None, "direct", "vm"):
        raise ValueError(f"runtime must be 'direct' or 'vm', got {runtime!r}")
    return has_direct and runtime != "vm"


def overheads(device: DeviceProfile, runtime: str | None = None) -> tuple[float, float]:
    """(call, per-kernel) overhead in µs of the runtime a step on `device` runs in."""
    if runs_direct(device, runtime):
        return device.direct_call_overhead_us, device.direct_kernel_overhead_us or 0.0
    return device.call_overhead_us, device.kernel_overhead_us


def _node_cost(flops: int, nbytes: int, launches: bool, device: DeviceProfile, peak_gflops: float,
               kernel_overhead_us: float) -> Cost:
    # GFLOP/s * 1e3 = FLOP/us and GB/s * 1e3 = B/us; pJ * 1e-6 = uJ; W * us = uJ.
    latency = max(flops / (peak_gflops * 1e3), nbytes / (device.mem_bandwidth_gbs * 1e3))
    if launches:
        latency += kernel_overhead_us
    energy = (flops * device.energy_pj_per_flop + nbytes * device.energy_pj_per_byte) * 1e-6
    return Cost(flops, nbytes, latency, energy + device.static_power_w * latency)


def estimate(ops: Iterable[tuple[str, OpCost]], device: DeviceProfile, precision: str = "fp32",
             runtime: str | None = None) -> Estimate:
    """Cost of one team step of the graph whose nodes, in topological order, are `ops`, in the runtime that
    runs it on `device` (module docstring), or in `runtime`."""
    if precision not in device.peak_gflops:
        raise KdccError(f"device {device.name!r} has no peak for precision {precision!r} "
                        f"(has: {', '.join(device.peak_gflops)})")
    peak = device.peak_gflops[precision]
    call_us, kernel_us = overheads(device, runtime)
    nodes = []
    in_kernel = False  # is there a kernel, since the last launch, that elementwise nodes can join?
    for name, op in ops:
        if op.kind not in OP_KINDS:
            raise ValueError(f"node {name!r}: unknown cost kind {op.kind!r}")
        if op.kind == "free":
            nodes.append(NodeCost(name, op.kind, Cost.ZERO, False))
            continue
        fused = op.kind == "elementwise" and in_kernel
        nbytes = op.param_bytes if fused else op.bytes
        nodes.append(NodeCost(name, op.kind, _node_cost(op.flops, nbytes, not fused, device, peak, kernel_us),
                              not fused))
        in_kernel = True
    call = Cost(0, 0, call_us, device.static_power_w * call_us)
    total = sum((n.cost for n in nodes), call)
    kernels = sum(n.launches_kernel for n in nodes)
    return Estimate(device.name, precision, "direct" if runs_direct(device, runtime) else "vm", tuple(nodes), call,
                    total, overhead_us=call_us + kernels * kernel_us)


def at_precision(ops: Iterable[tuple[str, OpCost]], precision: str) -> list[tuple[str, OpCost]]:
    """The fp32-annotated ops of a step as it runs at `precision` (targets/tvm/precision.py): weights stored at
    WEIGHT_BYTES[precision]; fp16 activations are half the bytes; int8 quantises only each matmul's input, so
    its activation bytes stay (a small over-estimate). FLOPs are unchanged: `estimate(..., precision)` takes
    them at that precision's peak."""
    if precision not in WEIGHT_BYTES:
        raise KdccError(f"unknown precision {precision!r} (known: {', '.join(WEIGHT_BYTES)})")
    w = WEIGHT_BYTES[precision]
    act = 2 if precision == "fp16" else 1
    return [(name, OpCost(op.kind, op.flops, op.param_bytes * w // 4, op.act_bytes // act)) for name, op in ops]


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value >= 1 else f"{value:.2f} µs"


def choose_device(ops: Iterable[tuple[str, OpCost]], profile: TargetProfile,
                  precision: str = "fp32") -> tuple[DeviceProfile, str]:
    """The device of `profile` with the lowest estimated step latency, and why.

    Ties go to the device listed first. The reason compares all devices and names
    what decides: overhead when the slowest device spends more time in call and
    kernel-launch overhead than in its roofline, throughput otherwise.
    """
    ops = list(ops)
    estimates = [(d, estimate(ops, d, precision)) for d in profile.devices]
    best, best_est = min(estimates, key=lambda de: de[1].total.latency_us)
    graph = _si(best_est.total.flops, "FLOP")
    if len(estimates) == 1:
        return best, f"{best.name}: {_us(best_est.total.latency_us)} (the only device of {profile.name})"
    others = ", ".join(f"{d.name} {_us(e.total.latency_us)}" for d, e in estimates if d is not best)
    _, worst = max(estimates, key=lambda de: de[1].total.latency_us)
    if worst.overhead_us >= worst.roofline_us:
        why = f"kernel-launch overhead dominates a {graph} graph"
    else:
        why = f"the {best.name}'s throughput dominates a {graph}, {_si(best_est.total.bytes, 'B')} graph"
    return best, f"{best.name}: {_us(best_est.total.latency_us)} vs {others} ({why})"


def step_cost(ops: Iterable[tuple[str, OpCost]], profile: TargetProfile,
              device: DeviceProfile | None = None) -> tuple[dict[str, float], DeviceProfile]:
    """The step's totals (flops, bytes, latency_us, energy_uj) on `device`, by default the one
    `choose_device` recommends: what budgets are checked against."""
    ops = list(ops)
    device = device or choose_device(ops, profile)[0]
    t = estimate(ops, device).total
    return {"flops": t.flops, "bytes": t.bytes, "latency_us": t.latency_us, "energy_uj": t.energy_uj}, device


def round_width(width: int, device: DeviceProfile) -> int:
    """`width` rounded up to the device's preferred multiple (SIMD lanes, warp), for pruned layers."""
    if width < 1:
        raise ValueError(f"a layer width must be at least 1, got {width}")
    multiple = device.preferred_multiple
    return -(-width // multiple) * multiple
