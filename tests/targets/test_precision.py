"""fp16 and int8 steps: real reduced-precision arithmetic, close to the fp32 student, the same on aarch64.

One tiny team step, calibrated on a few probe episodes; host libraries at fp16 and int8 are built once
for the module and replayed against fp32 torch; the aarch64 (orin) builds run under qemu-aarch64 with a
small C++ runner and are compared with the host builds of the same precision.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from kdcc.targets.bundle.runtime_libs import ffi_include_dir, runtime_libraries
from kdcc.targets.onnx_precision import onnx_at_precision
from kdcc.targets.profile import load_profile
from kdcc.targets.tvm.build import build_library
from kdcc.targets.tvm.lowering import INPUT_NAMES, onnx_bytes, to_relax
from kdcc.targets.tvm.precision import apply_precision
from kdcc.targets.tvm.runtime import HostPolicy
from kdcc.targets.tvm.verify import probe_episode
from tests.targets._runtime import needs_aarch64_runtime
from tests.targets._team import tiny_team

RUNNER = Path(__file__).with_name("step_runner.cc")
# What the tests hold the reduced precisions to, against the fp32 student on the same inputs:
AGREEMENT = {"fp16": 0.97, "int8": 0.9}  # fraction of greedy actions equal
Q_REL = {"fp16": 0.01, "int8": 0.08}  # max |ΔQ| / max |Q|


@torch.no_grad()
def _samples(team, episodes):
    """Team-step inputs along the episodes, each step fed the fp32 step's own hidden state and actions."""
    spec, out = team.spec, []
    for episode in episodes:
        last = np.full(spec.n_agents, -1, np.int64)
        hidden = np.zeros((spec.n_agents, spec.agent.hidden_dim), np.float32)
        for obs, state in episode:
            inputs = (obs, last, hidden, state)
            actions, _, new_hidden, _ = team(*(torch.from_numpy(a) for a in inputs))
            out.append(inputs)
            last, hidden = actions.numpy(), new_hidden.numpy()
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The team, its calibration samples, held-out samples, and a host library per reduced precision."""
    d = tmp_path_factory.mktemp("precision")
    team = tiny_team()
    calibration = _samples(team, [probe_episode(team.spec, 25, seed=s) for s in (1, 2)])
    held_out = _samples(team, [probe_episode(team.spec, 25, seed=s) for s in (300, 400)])
    profile = load_profile("host")
    relax_mod = to_relax(team, team.spec)
    mods, libs = {}, {}
    for p in ("fp16", "int8"):
        mods[p] = apply_precision(relax_mod, p, calibration)
        libs[p] = build_library(mods[p], profile.device("cpu"), profile, d / f"{p}.so", d / ".work").path
    return {"team": team, "calibration": calibration, "held_out": held_out, "mods": mods, "libs": libs, "dir": d}


def _replay(library, spec, samples):
    policy = HostPolicy(library, spec)
    return [policy.call(*s) for s in samples]


@torch.no_grad()
def _reference(team, samples):
    return [tuple(o.numpy() for o in team(*(torch.from_numpy(a) for a in s))) for s in samples]


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_host_build_matches_the_fp32_student(built, precision):
    team, samples = built["team"], built["held_out"]
    got, want = _replay(built["libs"][precision], team.spec, samples), _reference(team, samples)
    agreement = np.mean([np.mean(g[0] == w[0]) for g, w in zip(got, want)])
    q_rel = max(np.max(np.abs(g[1] - w[1])) for g, w in zip(got, want)) / max(np.max(np.abs(w[1])) for w in want)
    assert agreement >= AGREEMENT[precision]
    assert q_rel <= Q_REL[precision]
    assert q_rel > 0  # it did change the arithmetic


def _matmuls(mod):
    import tvm
    from tvm import relax

    found = []
    relax.analysis.post_order_visit(mod["main"].body, lambda e: found.append(e) if isinstance(e, relax.Call) and getattr(
        e.op, "name", "") == "relax.matmul" else None)
    return [(str(m.args[0].ty.dtype), str(m.args[1].ty.dtype), str(m.ty.dtype), isinstance(m.args[1], tvm.ir.expr.GenericConst))
            for m in found]


def test_int8_matmuls_are_integer_and_fp16_weights_are_half(built):
    """Every matmul by a weight is int8 x int8 -> int32 (fp16 x fp16 -> fp32 at fp16); the mixer's matmuls by
    weights its hypernetworks compute per step stay float32 at int8 (no calibrated scale for them)."""
    int8 = _matmuls(built["mods"]["int8"])
    assert sum(m[3] for m in int8) >= 4
    assert all(m[:3] == ("int8", "int8", "int32") if m[3] else m[:3] == ("float32",) * 3 for m in int8)
    fp16 = _matmuls(built["mods"]["fp16"])
    assert fp16 and all(m[:3] == ("float16", "float16", "float32") for m in fp16)
    params = {p.name: str(p.ty.dtype) for p in built["mods"]["int8"]["main"].params}
    assert params == {"obs": "float32", "last_actions": "int64", "hidden": "float32", "state": "float32"}


def test_onnx_at_int8_is_qdq_and_at_fp16_keeps_a_float32_interface(built):
    import onnxruntime as ort

    team, samples = built["team"], built["held_out"]
    fp32 = onnx_bytes(team, team.spec)
    qdq = onnx.load_from_string(onnx_at_precision(fp32, "int8", INPUT_NAMES, built["calibration"]))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in qdq.graph.node}
    half = onnx.load_from_string(onnx_at_precision(fp32, "fp16"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [
        i.type.tensor_type.elem_type for i in onnx.load_from_string(fp32).graph.input]
    want = _reference(team, samples)
    for model in (qdq, half):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        taken = {i.name for i in session.get_inputs()}
        got = [session.run(None, {n: a for n, a in zip(INPUT_NAMES, s) if n in taken}) for s in samples]
        assert np.mean([np.mean(g[0] == w[0]) for g, w in zip(got, want)]) >= AGREEMENT["int8"]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """step_runner.cc cross-built for aarch64 against the fetched aarch64 TVM runtime."""
    d = tmp_path_factory.mktemp("runner")
    rt = runtime_libraries("aarch64")["libtvm_runtime.so"].parent
    cmd = ["aarch64-linux-gnu-g++", "-std=c++17", "-O1", f"-I{ffi_include_dir()}", str(RUNNER), "-o", str(d / "run"),
           f"-L{rt}", "-Wl,--no-as-needed", "-ltvm_runtime", "-ltvm_ffi", f"-Wl,-rpath,{rt}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d / "run"


def _lines(episodes) -> str:
    rows = []
    for k, episode in enumerate(episodes):
        rows += ["reset"] if k else []
        rows += [" ".join(f"{v:.9g}" for v in np.concatenate([o.ravel(), s])) for o, s in episode]
    return "\n".join(rows) + "\n"


def _host_packed(library, spec, episodes):
    policy, out = HostPolicy(library, spec), []
    for episode in episodes:
        policy.reset()
        last = np.full(spec.n_agents, -1, np.int64)
        for obs, state in episode:
            actions, q_tot = policy.step(obs, last, state)
            out.append((actions, q_tot))
            last = actions
    return out


@needs_aarch64_runtime
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None or shutil.which("qemu-aarch64") is None
                    or not Path("/usr/aarch64-linux-gnu/lib").is_dir(), reason="needs g++-aarch64-linux-gnu and qemu-user")
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_aarch64_build_under_qemu_matches_the_host_build(built, runner, precision):
    spec, d = built["team"].spec, built["dir"]
    profile = load_profile("orin-cpu")
    lib = build_library(built["mods"][precision], profile.device("cpu"), profile, d / f"{precision}-aarch64.so",
                        d / ".work").path
    episodes = [probe_episode(spec, 20, seed=500), probe_episode(spec, 20, seed=600)]
    args = [str(v) for v in (spec.n_agents, spec.obs_dim, spec.agent.hidden_dim, spec.state_dim, spec.n_actions)]
    run = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(runner), str(lib), *args],
                         input=_lines(episodes), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    got = [np.array(line.split(), np.float64) for line in run.stdout.strip().splitlines()]
    want = _host_packed(built["libs"][precision], spec, episodes)
    n = spec.n_agents
    agreement = np.mean([np.mean(g[:n].astype(np.int64) == a) for g, (a, _) in zip(got, want)])
    assert len(got) == len(want) and agreement >= 0.97
    q_tot = np.array([g[-1] for g in got]), np.array([q for _, q in want])
    assert np.max(np.abs(q_tot[0] - q_tot[1])) <= 0.02 * np.max(np.abs(q_tot[1])) + 1e-4


def test_an_int8_bundle_is_verified_against_the_fp32_student(built, tmp_path):
    from kdcc.targets.bundle.writer import write_bundle

    team = built["team"]
    result = write_bundle(team, team.spec, load_profile("host"), tmp_path / "b", precision="int8",
                          calibration={"policy": built["calibration"]})
    v = result.verification
    assert v["precision"] == "int8" and v["inputs"] == len(built["calibration"])
    assert min(v["action_agreement"].values()) >= 0.9
    assert 0 < v["max_abs_diff"]["tvm_host"]["q"] < 0.5
    qdq = onnx.load(str(tmp_path / "b" / "student.onnx"))
    assert "QuantizeLinear" in {n.op_type for n in qdq.graph.node}
