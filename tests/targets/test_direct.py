"""The VM-free step (targets/tvm/direct*.py): the same outputs as the Relax VM library, nothing but libc.

On the session's tiny host bundle: every step (team, role, monitor) has its `.direct.so`, which
needs no TVM runtime; the team step played through 100 MPE episodes picks the VM library's
actions on every step with Q within 1e-6; one robot's agent does the same; the build is
deterministic; and what the VM-free form cannot express (a GPU device, a program with control
flow) is refused with a reason, not built wrong.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from kdcc.ir.agent_step import agent_example_inputs
from kdcc.ir.roles import team_roles
from kdcc.ir.spec import MarlSpec
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import run_episodes
from kdcc.targets.tvm.direct_runtime import DirectAgent, DirectPolicy
from kdcc.targets.tvm.runtime import HostAgent, HostPolicy

EPISODES = 100


@pytest.fixture(scope="module")
def bundle(host_bundle):
    root = host_bundle("spread")
    doc = json.loads((root / "profile.json").read_text())
    return root, doc, MarlSpec.from_dict(doc["spec"])


def _needed(library) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    return sorted(line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
def test_every_step_has_a_vm_free_library_that_needs_only_libc(bundle):
    root, doc, _ = bundle
    records = [lib["direct"] for lib in doc["libraries"]]
    records += [lib["direct"] for robot in doc["robots"] for lib in robot["libraries"].values()]
    assert len(records) == 3  # team, the shared agent role, the monitor
    for record in records:
        path = root / record["path"]
        assert path.name.endswith(".direct.so") and path.stat().st_size == record["bytes"] < 200_000
        assert record["kernels"] > 0 and record["storage_bytes"] > 0
        assert all(not lib.startswith(("libtvm", "libstdc++")) for lib in _needed(path)), _needed(path)
    for robot in doc["robots"]:
        assert robot["verification"]["direct"] == {"checked": True, "inputs": 4, "max_abs_diff_vs_vm": 0.0}


class _Both:
    """Steps the VM-free and the VM team step side by side; records the largest Q difference."""

    def __init__(self, direct: DirectPolicy, vm: HostPolicy):
        self.direct, self.vm, self.worst, self.steps = direct, vm, 0.0, 0

    def reset(self):
        self.direct.reset()
        self.vm.reset()

    def step(self, obs, last_actions, state):
        hidden = self.vm._views[2].copy()
        want = self.vm.call(obs, last_actions, hidden, state)
        got = self.direct.call(obs, last_actions, hidden, state)
        actions, _ = self.direct.step(obs, last_actions, state)
        vm_actions, _ = self.vm.step(obs, last_actions, state)
        assert np.array_equal(actions, vm_actions) and np.array_equal(got[0], want[0])
        for g, w in zip(got[1:], want[1:]):
            self.worst = max(self.worst, float(np.max(np.abs(g - w))))
        self.steps += 1
        return actions


def test_the_team_step_acts_as_the_vm_library_over_100_episodes(bundle):
    root, doc, spec = bundle
    lib = doc["libraries"][0]
    both = _Both(DirectPolicy(root / lib["direct"]["path"], spec), HostPolicy(root / lib["path"], spec))
    run_episodes(make_env(spec.env), both, EPISODES, seed=0)
    assert both.steps >= EPISODES * 10 and both.worst <= 1e-6


def test_one_robot_acts_as_its_vm_library(bundle):
    root, doc, spec = bundle
    role = team_roles(spec)[0]
    robot = next(r for r in doc["robots"] if r["role"] == role.name)
    lib = robot["libraries"]["cpu"]
    inputs = agent_example_inputs(spec, role)
    outputs = (np.zeros(1, np.int64), np.zeros((1, role.n_actions), np.float32),
               np.zeros((1, role.hidden_dim), np.float32))
    direct = DirectAgent(root / lib["direct"]["path"], inputs, outputs, agent_id=1)
    vm = HostAgent(root / lib["path"], inputs, role.n_actions, agent_id=1)
    rng = np.random.default_rng(0)
    for t in range(200):
        if t % 25 == 0:
            direct.reset()
            vm.reset()
        obs = rng.normal(size=(1, role.obs_dim)).astype(np.float32)
        assert direct.act(obs) == vm.act(obs)
    np.testing.assert_allclose(direct.inputs[2], vm._views[2], rtol=0, atol=1e-6)  # the carried hidden state


def test_the_build_is_deterministic_and_refuses_what_it_cannot_express(bundle, tmp_path):
    import tvm

    from kdcc.ir.agent_step import MonitorStep
    from kdcc.marl.qmix import build_mixer
    from kdcc.targets.bundle.role_stages import monitor_signature
    from kdcc.targets.profile import load_profile
    from kdcc.targets.tvm.build import build_library
    from kdcc.targets.tvm.direct import DirectUnsupported, build_direct_library, direct_plan
    from kdcc.targets.tvm.lowering import to_relax

    _, _, spec = bundle
    host = load_profile("host")
    mod = to_relax(MonitorStep(build_mixer(spec)).eval(), monitor_signature(spec))
    built = build_library(mod, host.device("cpu"), host, tmp_path / "monitor.so", tmp_path / ".work")
    a = build_direct_library(built, host, tmp_path / "a.so", tmp_path / ".work", "monitor step")
    b = build_direct_library(built, host, tmp_path / "b.so", tmp_path / ".work", "monitor step")
    assert a.path.read_bytes() == b.path.read_bytes()
    with pytest.raises(DirectUnsupported, match="cuda device"):
        direct_plan(built.lowered, tvm.target.Target({"kind": "cuda", "arch": "sm_87"}))
    x = built.lowered["main"].params[0]
    branchy = tvm.relax.Function([x], tvm.relax.If(tvm.relax.const(True, "bool"), x, x), ret_ty=x.ty)
    with pytest.raises(DirectUnsupported, match="not a tensor"):
        from kdcc.targets.tvm.direct_plan import step_plan

        step_plan(branchy)
