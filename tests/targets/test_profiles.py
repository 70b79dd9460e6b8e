"""Target profiles: the shipped ones load with their documented figures; bad ones fail in one line."""

from __future__ import annotations

import pytest

from kdcc.core.errors import KdccError
from kdcc.targets.profile import known_profiles, load_profile, parse_profile

SHIPPED = {"host", "orin", "orin-cpu", "orin-gpu", "orin-nano"}

GOOD = """
name = "mine"
description = "a user's board"

[[device]]
name = "cpu"
kind = "cpu"
peak_gflops = { fp32 = 100.0, int8 = 400 }
mem_bandwidth_gbs = 10.0
call_overhead_us = 2.0
kernel_overhead_us = 1.0
energy_pj_per_flop = 1.0
energy_pj_per_byte = 10.0
static_power_w = 0.5
preferred_multiple = 8
tvm_target = { kind = "llvm", mtriple = "aarch64-linux-gnu", mcpu = "cortex-a55" }
cross_triple = "aarch64-linux-gnu"
"""


def fails(text: str) -> str:
    with pytest.raises(KdccError) as info:
        parse_profile(text, "mine.toml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("mine.toml")
    return message


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_profile_loads(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.devices
    for device in profile.devices:
        assert device.peak_gflops["fp32"] > 0 and device.mem_bandwidth_gbs > 0
        assert device.tvm_target["kind"] == ("llvm" if device.kind == "cpu" else "cuda")


def test_known_profiles_lists_the_shipped_ones():
    assert SHIPPED <= set(known_profiles())


def test_orin_figures():
    orin = load_profile("orin")
    assert [d.name for d in orin.devices] == ["cpu", "gpu"]
    assert (orin.cuda_version, orin.jetpack) == ("12.6", "6.2")
    cpu, gpu = orin.device("cpu"), orin.device("gpu")
    assert cpu.peak_gflops == {"fp32": 422.4, "fp16": 844.8, "int8": 1689.6}  # 12 x 2.2 GHz x 16/32/64
    assert gpu.peak_gflops["fp32"] == pytest.approx(2048 * 2 * 1.3)
    assert gpu.peak_gflops["int8"] == pytest.approx(170_000 / 2, rel=0.01)  # dense = sparse / 2
    assert cpu.mem_bandwidth_gbs == gpu.mem_bandwidth_gbs == 204.8
    assert (cpu.preferred_multiple, gpu.preferred_multiple) == (4, 32)
    assert cpu.tvm_target == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78", "num-cores": 12}
    assert gpu.tvm_target["arch"] == "sm_87" and gpu.tvm_host["mcpu"] == "cortex-a78"
    assert cpu.cross_triple == gpu.cross_triple == "aarch64-linux-gnu"


def test_single_device_orin_profiles_match_orin():
    orin = load_profile("orin")
    assert load_profile("orin-cpu").devices == (orin.device("cpu"),)
    assert load_profile("orin-gpu").devices == (orin.device("gpu"),)


def test_orin_nano_names_the_right_host_core():
    nano = load_profile("orin-nano")
    assert nano.device("cpu").peak_gflops["fp32"] == 144.0  # 6 x 1.5 GHz x 16
    assert nano.device("gpu").peak_gflops["fp32"] == 1280.0  # 1024 x 2 x 0.625 GHz
    assert nano.device("gpu").mem_bandwidth_gbs == 68.0
    assert nano.device("cpu").tvm_target["mcpu"] == nano.device("gpu").tvm_host["mcpu"] == "cortex-a78"


def test_gpu_targets_equal_tvm_jetson_tags():
    tvm = pytest.importorskip("tvm")
    for profile, tag in (("orin", "nvidia/jetson-agx-orin-64gb"), ("orin-nano", "nvidia/jetson-orin-nano")):
        gpu = load_profile(profile).device("gpu")
        ours = tvm.target.Target(gpu.tvm_target, host=gpu.tvm_host)
        theirs = tvm.target.Target(tag)
        for attr in ("arch", "max_shared_memory_per_block", "max_threads_per_block",
                     "thread_warp_size", "registers_per_block"):
            assert ours.attrs[attr] == theirs.attrs[attr], (profile, attr)
        assert str(ours.host.attrs["mcpu"]) == "cortex-a78"


def test_host_profile_asks_for_the_native_cpu():
    host = load_profile("host")
    assert host.device().tvm_target == {"kind": "llvm", "mcpu": "native"}
    assert host.device().cross_triple is None


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KdccError, match=r"unknown target 'xavier' \(known: host, orin, orin-cpu, orin-gpu, orin-nano"):
        load_profile("xavier")


def test_missing_file_by_path(tmp_path):
    with pytest.raises(KdccError, match="not found"):
        load_profile(str(tmp_path / "nope.toml"))


def test_user_profile_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    profile = load_profile(str(path))
    device = profile.device()
    assert (profile.name, profile.source) == ("mine", str(path))
    assert device.peak_gflops == {"fp32": 100.0, "int8": 400.0}
    assert (device.static_power_w, device.preferred_multiple, device.tvm_target["mcpu"]) == (0.5, 8, "cortex-a55")
    with pytest.raises(KdccError, match="has no device 'gpu' \\(has: cpu\\)"):
        profile.device("gpu")


def test_malformed_toml():
    assert "malformed TOML" in fails(GOOD.replace("[[device]]", "[[device]"))


def test_missing_field():
    text = GOOD.replace("mem_bandwidth_gbs = 10.0\n", "")
    assert fails(text) == "mine.toml [device cpu]: missing field 'mem_bandwidth_gbs'"


def test_negative_bandwidth():
    text = GOOD.replace("mem_bandwidth_gbs = 10.0", "mem_bandwidth_gbs = -10.0")
    assert fails(text) == "mine.toml [device cpu]: field 'mem_bandwidth_gbs' must be positive, got -10.0"


@pytest.mark.parametrize("old, new, problem", [
    ('kind = "cpu"', 'kind = "npu"', "kind must be 'cpu' or 'gpu'"),
    ("fp32 = 100.0, ", "", "peak_gflops needs an fp32 entry"),
    ("static_power_w = 0.5", "static_power_w = -1", "'static_power_w' must not be negative"),
    ("preferred_multiple = 8", "preferred_multiple = 4.5", "'preferred_multiple' has the wrong type"),
    ("call_overhead_us = 2.0", 'call_overhead_us = "fast"', "'call_overhead_us' has the wrong type"),
])
def test_bad_fields(old, new, problem):
    assert problem in fails(GOOD.replace(old, new))


def test_no_devices():
    assert "needs at least one [[device]]" in fails('name = "x"\ndevice = []\n')
