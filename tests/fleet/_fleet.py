"""Running examples/fleet from tests: CMake builds of the robots, robot processes, the simulator.

Every wait is bounded: a robot must say "ready PORT" within its start-up timeout, the simulator
must finish within its own bound (ticks x deadline plus start-up), and processes still running at
the end of a test are killed.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from kdcc.ir.roles import role_of
from kdcc.ir.spec import MarlSpec
from tests.conftest import REPO

FLEET = REPO / "examples" / "fleet"
TOOLCHAIN_AARCH64 = REPO / "examples" / "firmware" / "aarch64-linux-gnu.cmake"
QEMU = ("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu")
# Robots are single-threaded by design: a tiny agent step costs less than waking a thread pool.
ROBOT_ENV = {**os.environ, "TVM_NUM_THREADS": "1"}


def bundle_spec(bundle: Path) -> MarlSpec:
    return MarlSpec.from_dict(json.loads((bundle / "profile.json").read_text())["spec"])


def build_robots(bundle: Path, build: Path, *cmake_args: str) -> list[Path]:
    """examples/fleet built against `bundle`; the robot binary of each agent, agent 0 first."""
    for cmd in (["cmake", "-S", str(FLEET), "-B", str(build), f"-DKDCC_BUNDLE={bundle}", *cmake_args],
                ["cmake", "--build", str(build), "-j", "2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    spec = bundle_spec(bundle)
    return [build / f"robot_{role_of(spec, i).name}" for i in range(spec.n_agents)]


class Robot:
    """One robot process; `port` is known once it has said "ready PORT"."""

    def __init__(self, binary: Path, agent: int, log: Path, *, port: int = 0, drills: tuple[str, ...] = (),
                 wrapper: tuple[str, ...] = (), ready_timeout_s: float = 30.0):
        self.agent, self.log = agent, log
        with log.open("a") as err:
            self.proc = subprocess.Popen([*wrapper, str(binary), "--agent", str(agent), "--port", str(port),
                                          "--idle-timeout", "120", *drills],
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=ROBOT_ENV)
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            line = self.proc.stdout.readline() if sel.select(ready_timeout_s) else ""
        if not line.startswith("ready "):
            self.stop()
            raise AssertionError(f"robot {agent} not ready within {ready_timeout_s} s: {line!r} {log.read_text()}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5)  # a BYE from the simulator ends it
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()


@contextmanager
def robots(binaries: list[Path], logs: Path, drills: dict[int, tuple[str, ...]] | None = None,
           wrapper: tuple[str, ...] = (), ready_timeout_s: float = 30.0):
    """One robot process per agent (agent i runs binaries[i] with drills.get(i)), stopped on exit."""
    started: list[Robot] = []
    try:
        for i, binary in enumerate(binaries):
            started.append(Robot(binary, i, logs / f"robot{i}.log", drills=(drills or {}).get(i, ()),
                                 wrapper=wrapper, ready_timeout_s=ready_timeout_s))
        yield started
    finally:
        for r in started:
            r.stop()


def start_simulator(bundle: Path, ports: list[int], out: Path, *, episodes: int, seed: int, deadline_ms: float,
                    trace: Path | None = None, ready_timeout_s: float = 30.0) -> subprocess.Popen:
    cmd = [sys.executable, str(FLEET / "simulator.py"), str(bundle), "--ports", ",".join(map(str, ports)),
           "--episodes", str(episodes), "--seed", str(seed), "--deadline-ms", str(deadline_ms),
           "--ready-timeout", str(ready_timeout_s), "--out", str(out)]
    return subprocess.Popen(cmd + (["--trace", str(trace)] if trace else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_simulator(proc: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
    """(exit status, stderr) once the simulator has exited (killed, and a failure, after `timeout_s`)."""
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        raise AssertionError(f"the simulator did not finish within {timeout_s} s") from None
    return proc.returncode, stderr


def finish_simulator(proc: subprocess.Popen, out: Path, timeout_s: float) -> dict:
    """The simulator's JSON summary once it has exited successfully."""
    status, stderr = wait_simulator(proc, timeout_s)
    assert status == 0, stderr[-3000:]
    return json.loads(out.read_text())


def run_fleet(bundle: Path, binaries: list[Path], tmp: Path, *, episodes: int, seed: int, deadline_ms: float,
              drills: dict[int, tuple[str, ...]] | None = None, wrapper: tuple[str, ...] = (),
              ready_timeout_s: float = 30.0) -> dict:
    """Start the robots, run the simulator to the end, and return its summary."""
    tmp.mkdir(parents=True, exist_ok=True)
    with robots(binaries, tmp, drills, wrapper, ready_timeout_s) as team:
        out = tmp / "summary.json"
        sim = start_simulator(bundle, [r.port for r in team], out, episodes=episodes, seed=seed,
                              deadline_ms=deadline_ms)
        bound = 60 + episodes * bundle_ticks(bundle) * deadline_ms / 1e3
        return finish_simulator(sim, out, bound)


def bundle_ticks(bundle: Path) -> int:
    """Ticks of one episode at most (the world's episode length, max_steps)."""
    from kdcc.marl.worlds import make_env

    return make_env(bundle_spec(bundle).env).max_steps
