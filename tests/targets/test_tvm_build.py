"""Code generation per device: host matches torch, aarch64 is an aarch64 ELF, CUDA embeds loadable PTX."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcc.core.errors import KdccError
from kdcc.ir.team import team_example_inputs
from kdcc.targets.profile import load_profile
from kdcc.targets.tvm.build import build_library, resolve_target
from kdcc.targets.tvm.lowering import to_relax
from kdcc.targets.tvm.runtime import HostPolicy
from kdcc.targets.tvm.toolchain import gpu_image_kind
from tests.targets._team import tiny_team


@pytest.fixture(scope="module")
def team():
    return tiny_team()


@pytest.fixture(scope="module")
def relax_mod(team):
    return to_relax(team, team.spec)


@pytest.fixture(scope="module")
def host_lib(relax_mod, tmp_path_factory):
    """The team step built for this machine, once for the module (read it, never write into its directory)."""
    return _build(relax_mod, "host", "cpu", tmp_path_factory.mktemp("host") / "a")


def _build(relax_mod, profile_name: str, device: str, out: Path):
    profile = load_profile(profile_name)
    return build_library(relax_mod, profile.device(device), profile, out / "policy.so", out / ".work")


def _elf_machine(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[18:20], "little")


def test_native_cpu_is_named():
    from tvm.target.codegen import llvm_get_system_cpu

    target = resolve_target(load_profile("host").device("cpu"))
    assert target["mcpu"] == str(llvm_get_system_cpu()) != "native"


def test_host_library_matches_torch_and_is_reproducible(team, relax_mod, host_lib, tmp_path):
    lib = host_lib
    again = _build(relax_mod, "host", "cpu", tmp_path / "b")
    assert hashlib.sha256(lib.path.read_bytes()).digest() == hashlib.sha256(again.path.read_bytes()).digest()
    assert not list(lib.path.parent.glob(".work")) and not list((tmp_path / "b").glob(".work"))
    policy = HostPolicy(lib.path, team.spec)
    for seed in range(3):
        x = team_example_inputs(team.spec, seed)
        got = policy.call(*(t.numpy() for t in x))
        with torch.no_grad():
            want = [t.numpy() for t in team(*x)]
        np.testing.assert_array_equal(got[0], want[0])
        for g, w in zip(got[1:], want[1:]):
            assert np.max(np.abs(g - w)) <= 1e-5


def test_host_policy_carries_hidden_state(team, host_lib):
    policy = HostPolicy(host_lib.path, team.spec)
    obs, _, _, state = (t.numpy() for t in team_example_inputs(team.spec, 1))
    last = np.full(3, -1, dtype=np.int64)
    hidden = torch.zeros(3, 16)
    for _ in range(3):
        actions, q_tot = policy.step(obs, last, state)
        with torch.no_grad():
            want_a, _, hidden, want_q = team(torch.from_numpy(obs), torch.from_numpy(last), hidden, torch.from_numpy(state))
        np.testing.assert_array_equal(actions, want_a.numpy())
        assert abs(q_tot - want_q.item()) <= 1e-5
        last = actions
    policy.reset()
    first, _ = policy.step(obs, np.full(3, -1, dtype=np.int64), state)
    assert first.shape == (3,)


def test_aarch64_build_is_an_aarch64_elf(relax_mod, tmp_path):
    lib = _build(relax_mod, "orin-cpu", "cpu", tmp_path)
    assert lib.arch == "aarch64" and _elf_machine(lib.path) == 183
    with pytest.raises(KdccError, match="built for another machine"):
        HostPolicy(lib.path, tiny_team().spec)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA toolkit)")
def test_cuda_build_embeds_ptx_for_the_jetpack_cuda(relax_mod, tmp_path):
    lib = _build(relax_mod, "orin-gpu", "gpu", tmp_path)
    assert lib.arch == "aarch64" and _elf_machine(lib.path) == 183
    data = lib.path.read_bytes()
    if lib.gpu["image"] == "ptx":
        assert b".version " + lib.gpu["ptx_isa"].encode() + b"\n.target sm_87" in data
    assert b"#ifdef __CUDACC_RTC__" not in data  # no CUDA source left to compile at load time


def test_gpu_image_choice():
    assert gpu_image_kind((13, 0), "12.6", "t")["image"] == "ptx"
    assert gpu_image_kind((13, 0), "12.6", "t")["ptx_isa"] == "8.5"
    assert gpu_image_kind((12, 2), "12.6", "t")["image"] == "cubin"
    assert gpu_image_kind((12, 6), "12.6", "t")["image"] == "cubin"
    with pytest.raises(KdccError, match="cuda_version"):
        gpu_image_kind((13, 0), "twelve", "t")


def _stub_libcuda(tmp_path: Path, runtime_cuda: Path) -> Path:
    """A libcuda.so.1 whose every entry fails: enough to load TVM's CUDA loader, no GPU needed."""
    names = subprocess.run(["nm", "-D", "--undefined-only", str(runtime_cuda)], capture_output=True,
                           text=True, check=True).stdout.split()
    src = tmp_path / "cuda.c"
    src.write_text("".join(f"int {n}(void){{return 999;}}\n" for n in names if n.startswith("cu") and "@" not in n))
    out = tmp_path / "libcuda.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(out), str(src)], check=True)
    return out


@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("gcc") is None, reason="needs nvcc and gcc")
def test_cuda_image_is_what_tvms_loader_reads(team, relax_mod, tmp_path):
    """Build with an x86 host, then deserialize with TVM's own CUDA module loader."""
    import tvm

    roots = [Path(shutil.which("nvcc")).resolve().parents[1], Path("/usr/local/cuda")]
    cudart = next((p for r in roots for p in sorted(r.glob("lib*/libcudart.so.*[0-9]"))), None)
    if cudart is None:
        pytest.skip("no libcudart next to nvcc")
    runtime_cuda = Path(tvm.__file__).parent / "lib" / "libtvm_runtime_cuda.so"
    ctypes.CDLL(str(_stub_libcuda(tmp_path, runtime_cuda)), ctypes.RTLD_GLOBAL)
    ctypes.CDLL(str(cudart), ctypes.RTLD_GLOBAL)
    ctypes.CDLL(str(runtime_cuda), ctypes.RTLD_GLOBAL)
    profile = load_profile("orin-gpu")
    device = profile.device("gpu")
    from dataclasses import replace

    x86 = replace(device, tvm_host={"kind": "llvm"}, cross_triple=None)
    lib = build_library(relax_mod, x86, profile, tmp_path / "policy.so", tmp_path / ".work")
    loaded = tvm.runtime.load_module(str(lib.path))

    def cuda_modules(m):
        return ([m] if m.kind == "cuda" else []) + [c for i in m.imports for c in cuda_modules(i)]

    (cuda,) = cuda_modules(loaded)
    ptx = cuda.inspect_source("ptx")
    assert f".version {lib.gpu['ptx_isa']}" in ptx and ".target sm_87" in ptx


def test_native_stderr_drops_only_the_known_benign_tvm_warnings(capfd):
    import os

    from kdcc.targets.tvm.build import _filtered_native_stderr

    with _filtered_native_stderr():
        os.write(2, b"[12:00:00] transform.h:1261: Warning: Fast mode segfaults when there are out-of-bounds "
                    b"indices. Make sure input indices are in bound\n")
        os.write(2, b"[12:00:00] something.cc:1: Warning: a real problem\n")
    err = capfd.readouterr().err
    assert "a real problem" in err and "Fast mode" not in err
