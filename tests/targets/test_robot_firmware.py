"""One robot's firmware (kdcc_agent.h, kdcc_policy::<role>) acts like the Python agent step.

Per team, one host bundle: the example's robot_runner is built against each role's CMake target
and run for every agent index on that agent's own observations alone; its actions equal those
of the role library called from Python (HostStep, hidden state and last action fed back) on
every step, its Q-values within 1e-5, and the monitor's Q_tot matches too. The teams cover the
three kinds of role: one network shared by identical agents (spread), one network per agent
(speaker-listener), and one network shared by agents whose observations and actions differ
(speaker-listener, padded and masked: the C runtime pads the observation itself). The robots run
the VM-free libraries (the default) and, configured with KDCC_POLICY_RUNTIME=vm, the Relax VM ones,
with the same output. A robot's install holds its role's VM-free library alone (no TVM runtime,
under 1 MB) and runs from there. Cross-built for the Orin CPU and run under qemu-aarch64, the
robots act as the host build does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kdcc.ir.agent_step import MonitorStep, agent_example_inputs, agent_step, monitor_example_inputs
from kdcc.ir.roles import role_of, team_roles
from kdcc.ir.team import TeamStep
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.targets.bundle.writer import write_bundle
from kdcc.targets.profile import load_profile
from kdcc.targets.tvm.runtime import HostStep
from tests.conftest import REPO, speaker_listener_spec
from tests.targets._runtime import needs_aarch64_runtime
from tests.targets._team import tiny_split_team

FIRMWARE = REPO / "examples" / "firmware"
EPISODES = (5, 3)  # steps per episode of every agent's observation file
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("g++") is None,
                                                   reason="needs cmake and g++")]


def _shared_speaker_listener() -> TeamStep:
    torch.manual_seed(0)
    spec = speaker_listener_spec(hidden=16)
    return TeamStep(spec, build_agent(spec), build_mixer(spec)).eval()


# one network per agent, and one network shared by agents that differ (the runtime zero-pads an agent's own
# observation and passes its index: the shared-role path a homogeneous team like spread takes too)
TEAMS = {"speaker-listener": tiny_split_team, "speaker-listener-shared": _shared_speaker_listener}


def _robot_steps(team: TeamStep) -> dict:
    """Each role's one-robot step, cut from the team's networks as the compile flow does."""
    spec = team.spec
    return {r.name: agent_step(spec, r, team.agent if r.shared else team.agent.nets[r.agents[0]]).eval()
            for r in team_roles(spec)}


def _write_team_bundle(team: TeamStep, target: str, out: Path) -> Path:
    write_bundle(team, team.spec, load_profile(target), out, agents=_robot_steps(team),
                 monitor=MonitorStep(team.mixer).eval())
    return out


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _build_robots(build: Path, roles: list[str], *args: str) -> dict[str, Path]:
    """robot_runner linked against each role's target (one build tree, reconfigured per role)."""
    runners = {}
    for role in roles:
        _run(["cmake", "-S", FIRMWARE, "-B", build, *args, f"-DKDCC_ROBOT_ROLE={role}"])
        _run(["cmake", "--build", build, "--target", "robot_runner"])
        runners[role] = build / f"robot_runner-{role}"
        shutil.copy2(build / "robot_runner", runners[role])
    return runners


def _own_observations(spec, agent: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(100 + agent)
    return [[rng.normal(size=spec.obs_size(agent)).astype(np.float32) for _ in range(n)] for n in EPISODES]


def _write_observations(path: Path, episodes: list[list[np.ndarray]]) -> Path:
    lines = ["# kdcc agent observations v1"]
    for k, episode in enumerate(episodes):
        lines += (["reset"] if k else []) + [" ".join(f"{v:.9g}" for v in obs) for obs in episode]
    path.write_text("\n".join(lines) + "\n")
    return path


def _parse(stdout: str) -> tuple[list[int], np.ndarray]:
    rows = [line.split() for line in stdout.strip().splitlines()]
    return [int(r[0]) for r in rows], np.array([[float(v) for v in r[1:]] for r in rows])


def _python_robot(library: Path, spec, agent: int, episodes) -> tuple[list[int], np.ndarray]:
    """The role library from Python, fed as a robot feeds it: own obs (zero-padded), its last action, its hidden."""
    role = role_of(spec, agent)
    step = HostStep(library, agent_example_inputs(spec, role))
    actions, qs = [], []
    for episode in episodes:
        last, hidden = np.array([-1]), np.zeros((1, role.hidden_dim), np.float32)
        for obs in episode:
            padded = np.zeros((1, role.obs_dim), np.float32)
            padded[0, : obs.size] = obs
            action, q, hidden = step(padded, last, hidden, *([np.array([agent])] if role.shared else []))
            actions.append(int(action[0]))
            qs.append(q[0, : spec.action_size(agent)])
            last = action
    return actions, np.array(qs)


@pytest.fixture(scope="module")
def host_bundles(tmp_path_factory):
    """`host_bundles(name)`: (team, its host bundle) of TEAMS[name], written once per module."""
    written: dict[str, tuple] = {}

    def get(name: str) -> tuple:
        if name not in written:
            team = TEAMS[name]()
            written[name] = team, _write_team_bundle(team, "host", tmp_path_factory.mktemp(name) / "bundle")
        return written[name]

    return get


@pytest.fixture(scope="module", params=sorted(TEAMS))
def robots(request, tmp_path_factory, host_bundles):
    """A host bundle of one team, and robot_runner built for each of its roles (plus monitor_runner)."""
    tmp = tmp_path_factory.mktemp(request.param)
    team, bundle = host_bundles(request.param)
    roles = [r.name for r in team_roles(team.spec)]
    runners = _build_robots(tmp / "fw", roles, f"-Dkdcc_policy_DIR={bundle}")
    _run(["cmake", "--build", tmp / "fw", "--target", "monitor_runner"])
    obs = {i: _write_observations(tmp / f"obs{i}.txt", _own_observations(team.spec, i))
           for i in range(team.spec.n_agents)}
    return SimpleNamespace(spec=team.spec, bundle=bundle, lib=bundle / "lib" / "cpu", fw=tmp / "fw", tmp=tmp,
                           runners=runners, obs=obs, last_role=roles[-1])


def test_every_robot_acts_like_the_python_agent_step(robots):
    spec = robots.spec
    for agent in range(spec.n_agents):
        role = role_of(spec, agent).name
        got_actions, got_q = _parse(_run([robots.runners[role], agent, robots.obs[agent]]).stdout)
        want_actions, want_q = _python_robot(robots.lib / f"{role}.so", spec, agent,
                                             _own_observations(spec, agent))
        assert len(got_actions) == sum(EPISODES)
        assert got_actions == want_actions, f"agent {agent}"
        assert got_q.shape == (sum(EPISODES), spec.action_size(agent))
        np.testing.assert_allclose(got_q, want_q, rtol=0, atol=1e-5, err_msg=f"agent {agent}")


def test_monitor_q_tot_matches_python(robots):
    spec, rng = robots.spec, np.random.default_rng(7)
    inputs = [(rng.normal(size=spec.n_agents), rng.normal(size=spec.state_dim)) for _ in range(4)]
    path = robots.tmp / "monitor.txt"
    path.write_text("".join(" ".join(f"{v:.9g}" for v in np.concatenate([q, s])) + "\n" for q, s in inputs))
    got = [float(v) for v in _run([robots.fw / "monitor_runner", path]).stdout.split()]
    step = HostStep(robots.lib / "monitor.so", monitor_example_inputs(spec))
    want = [float(step(q[None].astype(np.float32), s.astype(np.float32))[0][0]) for q, s in inputs]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bad_agent_index_and_missing_library_are_clear_errors(robots):
    spec = robots.spec
    runner = robots.runners[role_of(spec, 0).name]
    out = subprocess.run([str(runner), str(spec.n_agents), str(robots.obs[0])], capture_output=True, text=True)
    assert out.returncode == 1 and f"agent index {spec.n_agents} out of range" in out.stderr
    empty = robots.tmp / "no-library"
    empty.mkdir(exist_ok=True)
    shutil.copy2(robots.lib / "device.txt", empty)
    out = subprocess.run([str(runner), "0", str(robots.obs[0]), str(empty)], capture_output=True, text=True)
    assert out.returncode == 1 and f"{empty}/{role_of(spec, 0).name}.direct.so: not found" in out.stderr
    if not role_of(spec, 1).shared:  # a role's firmware refuses another role's agent
        out = subprocess.run([str(runner), "1", str(robots.obs[1])], capture_output=True, text=True)
        assert out.returncode == 1 and "agent 1 runs role agent1, but this firmware was built for role agent0" \
            in out.stderr


def test_a_robot_installs_and_runs_with_its_role_files_alone(robots):
    prefix = robots.tmp / "robot"
    _run(["cmake", "--install", robots.fw, "--prefix", prefix])
    installed = sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*") if p.is_file())
    role = robots.last_role  # the role the build tree was configured with last
    assert installed == ["bin/robot_runner", f"share/kdcc/lib/cpu/{role}.direct.so", "share/kdcc/lib/cpu/device.txt"]
    assert (prefix / f"share/kdcc/lib/cpu/{role}.direct.so").stat().st_size < 1_000_000
    agent = max(a for a in range(robots.spec.n_agents) if role_of(robots.spec, a).name == role)
    there = _run([prefix / "bin" / "robot_runner", agent, robots.obs[agent], prefix / "share/kdcc/lib/cpu"])
    assert there.stdout == _run([robots.runners[role], agent, robots.obs[agent]]).stdout


def test_the_vm_runtime_build_acts_as_the_vm_free_one(robots):
    role = robots.last_role
    agent = max(a for a in range(robots.spec.n_agents) if role_of(robots.spec, a).name == role)
    vm = robots.tmp / "fw-vm"
    _run(["cmake", "-S", FIRMWARE, "-B", vm, f"-Dkdcc_policy_DIR={robots.bundle}", f"-DKDCC_ROBOT_ROLE={role}",
          "-DKDCC_POLICY_RUNTIME=vm"])
    _run(["cmake", "--build", vm, "--target", "robot_runner"])
    assert _run([vm / "robot_runner", agent, robots.obs[agent]]).stdout == \
        _run([robots.runners[role], agent, robots.obs[agent]]).stdout


def test_bench_reports_latency_and_memory(robots):
    words = _run([robots.runners[role_of(robots.spec, 0).name], 0, "--bench", 200]).stdout.split()
    stats = dict(zip(words[::2], words[1::2]))
    assert int(stats["steps"]) == 200
    assert 0 < float(stats["median_us"]) <= float(stats["p99_us"])
    assert int(stats["peak_rss_kb"]) > 0


@needs_aarch64_runtime
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None or shutil.which("qemu-aarch64") is None
                    or not Path("/usr/aarch64-linux-gnu/lib").is_dir(),
                    reason="needs g++-aarch64-linux-gnu and qemu-user")
def test_orin_cpu_robots_act_as_the_host_build_under_qemu(tmp_path, host_bundles):
    """Against the role libraries of the same team's host bundle (the speaker-listener robots' own)."""
    team, (_, host) = tiny_split_team(), host_bundles("speaker-listener")
    spec = team.spec
    bundle = _write_team_bundle(team, "orin-cpu", tmp_path / "bundle")
    roles = team_roles(spec)
    runners = _build_robots(tmp_path / "fw", [r.name for r in roles],
                            f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE / 'aarch64-linux-gnu.cmake'}", f"-DKDCC_BUNDLE={bundle}")
    assert all(r.read_bytes()[18:20] == (183).to_bytes(2, "little") for r in runners.values())  # EM_AARCH64
    for role in roles:
        library = host / "lib" / "cpu" / f"{role.name}.so"
        for agent in role.agents:
            episodes = _own_observations(spec, agent)
            obs = _write_observations(tmp_path / f"obs{agent}.txt", episodes)
            run = _run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", runners[role.name], agent, obs], timeout=120)
            got_actions, got_q = _parse(run.stdout)
            want_actions, want_q = _python_robot(library, spec, agent, episodes)
            assert got_actions == want_actions, f"agent {agent}"
            np.testing.assert_allclose(got_q, want_q, rtol=0, atol=1e-5, err_msg=f"agent {agent}")


def test_a_library_changed_after_compile_is_refused_before_it_loads(robots):
    spec = robots.spec
    role = role_of(spec, 0).name
    tampered = robots.tmp / "tampered"
    shutil.copytree(robots.lib, tampered, dirs_exist_ok=True)
    data = bytearray((tampered / f"{role}.direct.so").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, somewhere in the code or the weights
    (tampered / f"{role}.direct.so").write_bytes(bytes(data))
    out = subprocess.run([str(robots.runners[role]), "0", str(robots.obs[0]), str(tampered)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{tampered}/{role}.direct.so: sha256 " in out.stderr and "not the digest this bundle was compiled with" \
        in out.stderr
    # another library of the bundle renamed to this role's name is refused too
    shutil.copy2(robots.lib / "monitor.direct.so", tampered / f"{role}.direct.so")
    out = subprocess.run([str(robots.runners[role]), "0", str(robots.obs[0]), str(tampered)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "not the digest" in out.stderr
