"""Cost model arithmetic, checked against hand-computed numbers on round-number devices.

CPU below: 100 GFLOP/s = 1e5 FLOP/µs, 10 GB/s = 1e4 B/µs, 2 µs per call, 1 µs per
kernel, 1 pJ/FLOP, 10 pJ/B, 0.5 W static (0.5 µJ per µs).
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kdcc.core.errors import KdccError
from kdcc.ir.opcost import OpCost
from kdcc.targets.cost_model import Cost, choose_device, estimate, round_width
from kdcc.targets.profile import DeviceProfile, TargetProfile, load_profile
from kdcc.targets.profile_table import profile_rows, render_profile_table

CPU = DeviceProfile(name="cpu", kind="cpu", peak_gflops={"fp32": 100.0, "fp16": 200.0}, mem_bandwidth_gbs=10.0,
                    call_overhead_us=2.0, kernel_overhead_us=1.0, energy_pj_per_flop=1.0, energy_pj_per_byte=10.0,
                    preferred_multiple=8, tvm_target={"kind": "llvm"}, static_power_w=0.5)
GPU = DeviceProfile(name="gpu", kind="gpu", peak_gflops={"fp32": 10_000.0}, mem_bandwidth_gbs=50.0,
                    call_overhead_us=20.0, kernel_overhead_us=5.0, energy_pj_per_flop=0.1, energy_pj_per_byte=10.0,
                    preferred_multiple=32, tvm_target={"kind": "cuda"}, static_power_w=1.0)
BOTH = TargetProfile(name="both", description="", devices=(CPU, GPU))

COMPUTE_BOUND = OpCost("gemm", flops=1_000_000, param_bytes=4_000, act_bytes=1_000)  # 10 µs vs 0.5 µs
MEMORY_BOUND = OpCost("gemm", flops=2_000, param_bytes=100_000, act_bytes=1_000)  # 0.02 µs vs 10.1 µs
RELU = OpCost("elementwise", flops=1_000, param_bytes=0, act_bytes=8_000)
FREE = OpCost("free")
GRAPH = [("x", FREE), ("fc1", COMPUTE_BOUND), ("view", FREE), ("relu", RELU), ("fc2", MEMORY_BOUND), ("out", FREE)]


def test_cost_adds_up():
    assert Cost(1, 2, 3.0, 4.0) + Cost(10, 20, 30.0, 40.0) == Cost(11, 22, 33.0, 44.0)
    assert Cost.ZERO + Cost(1, 2, 3.0, 4.0) == Cost(1, 2, 3.0, 4.0)
    assert Cost.ZERO == Cost(0, 0, 0.0, 0.0)


def test_compute_bound_gemm():
    fc = estimate([("fc", COMPUTE_BOUND)], CPU).node("fc")
    assert (fc.flops, fc.bytes) == (1_000_000, 5_000)
    assert fc.latency_us == pytest.approx(10.0 + 1.0)  # 1e6 / 1e5 + kernel overhead
    assert fc.energy_uj == pytest.approx(1.0 + 0.05 + 0.5 * 11.0)  # FLOPs + DRAM bytes + static


def test_memory_bound_gemm():
    fc = estimate([("fc", MEMORY_BOUND)], CPU).node("fc")
    assert fc.latency_us == pytest.approx(10.1 + 1.0)  # 101,000 B / 1e4 B/µs
    assert fc.energy_uj == pytest.approx(0.002 + 1.01 + 0.5 * 11.1)


def test_step_total_has_one_call_overhead_and_fuses_elementwise():
    est = estimate(GRAPH, CPU)
    relu = est.node("relu")
    assert relu == Cost(flops=1_000, bytes=0, latency_us=pytest.approx(0.01), energy_uj=pytest.approx(0.001 + 0.005))
    assert [n.launches_kernel for n in est.nodes] == [False, True, False, False, True, False]
    assert est.kernels == 2
    assert est.call == Cost(0, 0, 2.0, 1.0)
    assert est.total.flops == 1_003_000 and est.total.bytes == 106_000
    assert est.total.latency_us == pytest.approx(2.0 + 11.0 + 0.01 + 11.1)
    assert est.total.energy_uj == pytest.approx(1.0 + 6.55 + 0.006 + 6.562)
    assert est.overhead_us == pytest.approx(2.0 + 2 * 1.0)
    assert est.roofline_us == pytest.approx(10.0 + 0.01 + 10.1)


def test_free_nodes_cost_nothing():
    est = estimate([("x", FREE), ("reshape", OpCost("free", 0, 0, 4_096)), ("out", FREE)], CPU)
    assert all(n.cost == Cost.ZERO for n in est.nodes)
    assert est.kernels == 0 and est.total == est.call


def test_elementwise_without_a_kernel_before_it_launches_one():
    est = estimate([("x", FREE), ("relu", RELU)], CPU)
    assert est.nodes[1].launches_kernel
    assert est.node("relu").latency_us == pytest.approx(8_000 / 1e4 + 1.0)
    assert est.node("relu").bytes == 8_000


def test_elementwise_fuses_into_data_and_reduce_kernels_too():
    for kind in ("data", "reduce"):
        est = estimate([("k", OpCost(kind, 10, 0, 800)), ("add", OpCost("elementwise", 10, 40, 80))], CPU)
        assert [n.launches_kernel for n in est.nodes] == [True, False]
        assert est.node("add").bytes == 40  # its parameter only


def test_precision_picks_the_peak():
    fc = estimate([("fc", COMPUTE_BOUND)], CPU, precision="fp16").node("fc")
    assert fc.latency_us == pytest.approx(5.0 + 1.0)
    with pytest.raises(KdccError, match=r"device 'cpu' has no peak for precision 'int4' \(has: fp32, fp16\)"):
        estimate([("fc", COMPUTE_BOUND)], CPU, precision="int4")


def test_unknown_kind_is_a_bug():
    with pytest.raises(ValueError, match="conv"):
        estimate([("c", OpCost("conv", 1))], CPU)


def test_choose_device_cpu_for_a_tiny_graph():
    tiny = [("x", FREE), ("fc", OpCost("gemm", 43_000, 4_000, 1_000))]
    # cpu: max(0.43, 0.5) + 1 + 2 = 3.5 µs; gpu: max(0.0043, 0.1) + 5 + 20 = 25.1 µs
    device, reason = choose_device(tiny, BOTH)
    assert device is CPU
    assert reason == "cpu: 3.5 µs vs gpu 25.1 µs (kernel-launch overhead dominates a 43 kFLOP graph)"


def test_choose_device_gpu_for_a_huge_graph():
    huge = [("fc", OpCost("gemm", 10**10, 4_000_000, 1_000_000))]
    # cpu: 1e10 / 1e5 + 1 + 2 = 100,003 µs; gpu: 1e10 / 1e7 + 5 + 20 = 1,025 µs
    device, reason = choose_device(huge, BOTH)
    assert device is GPU
    assert reason == "gpu: 1,025.0 µs vs cpu 100,003.0 µs (the gpu's throughput dominates a 10 GFLOP, 5 MB graph)"


def test_choose_device_on_orin():
    orin = load_profile("orin")
    # A GRU-32-sized student: ~43 kFLOP in a handful of small kernels.
    student = [("fc1", OpCost("gemm", 2 * 3 * 30 * 32, 30 * 32 * 4, 3 * 62 * 4)),
               ("relu", OpCost("elementwise", 96, 0, 768)),
               ("gru", OpCost("gemm", 2 * 3 * 64 * 96 * 3, 64 * 96 * 3 * 4, 3 * 352 * 4)),
               ("gates", OpCost("elementwise", 3 * 96 * 4, 0, 3 * 192 * 4)),
               ("fc2", OpCost("gemm", 2 * 3 * 32 * 5, 32 * 5 * 4, 3 * 37 * 4))]
    device, reason = choose_device(student, orin)
    assert device.name == "cpu" and "kernel-launch overhead dominates" in reason
    big = [(f"fc{i}", OpCost("gemm", 2 * 256 * 4096 * 4096, 4096 * 4096 * 4, 256 * 8192 * 4)) for i in range(4)]
    device, reason = choose_device(big, orin)
    assert device.name == "gpu" and "throughput dominates" in reason


def test_choose_device_with_one_device():
    device, reason = choose_device([("fc", OpCost("gemm", 43_000, 4_000, 1_000))],
                                   TargetProfile("solo", "", (CPU,)))
    assert device is CPU and reason == "cpu: 3.5 µs (the only device of solo)"


def test_round_width():
    assert [round_width(w, CPU) for w in (1, 8, 9, 30, 32)] == [8, 8, 16, 32, 32]
    orin = load_profile("orin")
    assert (round_width(30, orin.device("cpu")), round_width(100, orin.device("gpu"))) == (32, 128)
    with pytest.raises(ValueError):
        round_width(0, CPU)


def test_profile_rows_add_up_per_device():
    table = profile_rows(GRAPH, BOTH)
    assert [r.node for r in table.rows] == ["fc1", "relu", "fc2"]  # free nodes left out
    assert [r.fused for r in table.rows] == [False, True, False]
    assert table.devices == ("cpu", "gpu") and table.best_device == "cpu"
    for dev, device in (("cpu", CPU), ("gpu", GPU)):
        est = estimate(GRAPH, device)
        column = sum((r.per_device[dev] for r in table.rows), table.call.per_device[dev])
        assert column == table.total.per_device[dev] == est.total
    assert table.total.per_device["cpu"].latency_us == pytest.approx(24.11)
    assert (table.total.flops, table.total.param_bytes, table.total.act_bytes) == (1_003_000, 104_000, 10_000)


def test_render_profile_table():
    out = io.StringIO()
    render_profile_table(profile_rows(GRAPH, BOTH), Console(file=out, width=200))
    text = out.getvalue()
    for expected in ("fc1", "elementwise (fused)", "(call)", "total", "1,003,000", "24.110",
                     "cpu µs", "gpu µJ", "best device: cpu:"):
        assert expected in text, expected
    assert "view" not in text


def test_a_cpu_step_is_priced_as_the_vm_free_library_that_runs_it():
    """With its VM-free overheads in the profile a CPU step pays those (what a robot runs); `runtime="vm"` gives
    the Relax VM's price, and a GPU always runs the VM."""
    import dataclasses

    direct = dataclasses.replace(CPU, direct_call_overhead_us=0.1, direct_kernel_overhead_us=0.05)
    est, vm = estimate(GRAPH, direct), estimate(GRAPH, direct, runtime="vm")
    assert (est.runtime, vm.runtime) == ("direct", "vm")
    assert est.total.latency_us == pytest.approx(0.1 + 10.0 + 0.05 + 0.01 + 10.1 + 0.05)  # relu fused into fc1
    assert vm.total.latency_us == pytest.approx(estimate(GRAPH, CPU).total.latency_us)
    assert estimate(GRAPH, CPU).runtime == "vm"  # no VM-free overheads in the profile: the VM's
    assert estimate(GRAPH, dataclasses.replace(GPU, direct_call_overhead_us=0.1)).runtime == "vm"


def test_keep_candidates_differ_in_cost_by_their_arithmetic_not_by_noise():
    """A robot's GRU 4 and GRU 8 agent steps on the Orin CPU: priced as the VM-free library they run, the wider
    costs visibly more (priced as the VM's, its fixed cost made them differ by fractions of a percent)."""
    import torch

    from kdcc.ir.program import from_modules
    from kdcc.marl.qmix import build_agent, build_mixer
    from kdcc.targets.robot_cost import robot_costs
    from tests.conftest import tiny_spec

    import dataclasses

    orin = load_profile("orin")
    as_vm = dataclasses.replace(orin, devices=tuple(dataclasses.replace(d, direct_call_overhead_us=None)
                                                    for d in orin.devices))
    cost, vm = {}, {}
    for width in (4, 8):
        torch.manual_seed(0)
        spec = tiny_spec(hidden=width)
        program = from_modules(spec, build_agent(spec), build_mixer(spec))
        cost[width] = robot_costs(program, orin)["agent"]["devices"]["cpu"]["latency_us"]
        vm[width] = robot_costs(program, as_vm)["agent"]["devices"]["cpu"]["latency_us"]
    assert cost[4] < 0.5 < vm[4]  # a fraction of a µs, not the VM's call of several
    assert (cost[8] / cost[4] - 1) > 10 * (vm[8] / vm[4] - 1) > 0, (cost, vm)
