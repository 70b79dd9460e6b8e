"""examples/firmware builds with CMake against a bundle and acts like the Python policy.

Host: find_package(kdcc_policy), run, actions equal HostPolicy's. Orin CPU: cross-built
with Debian's aarch64 g++ via add_subdirectory, run under qemu-aarch64 against the aarch64
TVM runtime that `make setup` fetched from PyPI's wheel (the test never fetches it); actions
equal and Q_tot within float tolerance of the host's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kdcc.targets.bundle.writer import write_bundle
from kdcc.targets.profile import load_profile
from kdcc.targets.tvm.runtime import HostPolicy
from kdcc.targets.tvm.verify import probe_episode
from tests.conftest import REPO
from tests.targets._runtime import needs_aarch64_runtime
from tests.targets._team import tiny_split_team, tiny_team

FIRMWARE = REPO / "examples" / "firmware"
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("g++") is None,
                                reason="needs cmake and g++")


def _observations(path: Path, episodes: list[list[tuple[np.ndarray, np.ndarray]]]) -> None:
    lines = ["# kdcc observations v1"]
    for k, episode in enumerate(episodes):
        if k:
            lines.append("reset")
        lines += [" ".join(f"{v:.9g}" for v in np.concatenate([obs.ravel(), state])) for obs, state in episode]
    path.write_text("\n".join(lines) + "\n")


def _python_run(library: Path, spec, episodes) -> list[tuple[list[int], float]]:
    policy, out = HostPolicy(library, spec), []
    for episode in episodes:
        policy.reset()
        last = np.full(spec.n_agents, -1, dtype=np.int64)
        for obs, state in episode:
            actions, q_tot = policy.step(obs, last, state)
            out.append((actions.tolist(), q_tot))
            last = actions
    return out


def _parse(stdout: str) -> list[tuple[list[int], float]]:
    rows = [line.split() for line in stdout.strip().splitlines()]
    return [([int(v) for v in row[:-1]], float(row[-1])) for row in rows]


def _cmake(build: Path, *args: str) -> None:
    for cmd in (["cmake", "-S", str(FIRMWARE), "-B", str(build), *args], ["cmake", "--build", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def episodes():
    spec = tiny_team().spec
    return [probe_episode(spec, 5, seed=100), probe_episode(spec, 3, seed=200)]


@pytest.mark.slow
def test_host_firmware_matches_python(tmp_path, episodes, team_bundle):
    host = team_bundle("host")  # tiny_team()'s, shared by the session (tests/targets/conftest.py)
    _cmake(tmp_path / "fw", f"-Dkdcc_policy_DIR={host.out}")
    _observations(tmp_path / "obs.txt", episodes)
    run = subprocess.run([str(tmp_path / "fw" / "policy_runner"), str(tmp_path / "obs.txt")],
                         capture_output=True, text=True, check=True)
    got, want = _parse(run.stdout), _python_run(host.out / "lib" / "cpu" / "policy.so", host.team.spec, episodes)
    assert [a for a, _ in got] == [a for a, _ in want]
    assert np.allclose([q for _, q in got], [q for _, q in want], rtol=0, atol=1e-6)


def _orin_and_host_builds(team_name: str, team_bundle, tmp: Path):
    """(team, its orin-cpu bundle, its host library): the session's for tiny_team, else built here."""
    if team_name == "shared":
        return team_bundle("orin-cpu").team, team_bundle("orin-cpu").out, team_bundle("host").out / "lib/cpu/policy.so"
    from kdcc.targets.tvm.build import build_library
    from kdcc.targets.tvm.lowering import to_relax

    team, profile = tiny_split_team(), load_profile("host")
    write_bundle(team, team.spec, load_profile("orin-cpu"), tmp / "bundle")
    host = build_library(to_relax(team, team.spec), profile.device("cpu"), profile, tmp / "host.so", tmp / ".work")
    return team, tmp / "bundle", host.path


@pytest.mark.slow
@needs_aarch64_runtime
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None or shutil.which("qemu-aarch64") is None
                    or not Path("/usr/aarch64-linux-gnu/lib").is_dir(),
                    reason="needs g++-aarch64-linux-gnu and qemu-user")
@pytest.mark.parametrize("team_name", ["shared", "one-network-per-agent"])
def test_orin_cpu_firmware_runs_under_qemu(tmp_path, team_name, team_bundle):
    team, bundle, host = _orin_and_host_builds(team_name, team_bundle, tmp_path)
    episodes = [probe_episode(team.spec, 5, seed=100), probe_episode(team.spec, 3, seed=200)]
    assert (bundle / "runtime" / "aarch64" / "libtvm_runtime.so").is_file()
    _cmake(tmp_path / "fw", f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE / 'aarch64-linux-gnu.cmake'}", f"-DKDCC_BUNDLE={bundle}")
    binary = tmp_path / "fw" / "policy_runner"
    assert binary.read_bytes()[18:20] == (183).to_bytes(2, "little")
    _observations(tmp_path / "obs.txt", episodes)
    run = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(binary), str(tmp_path / "obs.txt")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got, want = _parse(run.stdout), _python_run(host, team.spec, episodes)
    assert [a for a, _ in got] == [a for a, _ in want]
    assert np.allclose([q for _, q in got], [q for _, q in want], rtol=0, atol=1e-5)
