"""examples/fleet: one robot process per agent, each sent only its own observation over UDP.

With every robot answering, the fleet's team returns equal `kdcc eval`'s on the same seeds, per
episode (a robot's action is the team step's action for it): a homogeneous spread team, speaker–
listener (one network per agent), and robots cross-built for the Orin's CPU under qemu-aarch64.
With faults (a robot killed mid-episode and restarted, lost and late packets) the miss counts are
exact, and the returns are those of a Python model of the same faults (tests/fleet/_reference.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
from pathlib import Path

import numpy as np
import pytest

from kdcc.api import evaluate
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import run_episodes
from kdcc.passes import Budget
from kdcc.targets.bundle.policy import open_bundle_policy
from tests.conftest import FAST, make_tiny_teacher
from tests.fleet._fleet import (
    QEMU,
    TOOLCHAIN_AARCH64,
    Robot,
    build_robots,
    bundle_spec,
    finish_simulator,
    robots,
    run_fleet,
    start_simulator,
    wait_simulator,
)
from tests.fleet._reference import ModelFleet, ModelRobot
from tests.targets._runtime import needs_aarch64_runtime

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("g++") is None,
                                reason="needs cmake and g++")
SEED, EPISODES = 11, 3


def _compiled(tmp: Path, make_teacher, target: str) -> Path:
    teacher = make_teacher(tmp / "teacher.pt", seed=2)
    out = compile_teacher(str(teacher), target, tmp / "bundle", CompileOptions(
        budget=Budget(ratio=2.0), keep=None, collect_episodes=4, options=FAST, certify_episodes=0))
    return out.out_dir


@pytest.fixture(scope="module")
def spread(tmp_path_factory, host_bundle):
    bundle = host_bundle("spread")
    return bundle, build_robots(bundle, tmp_path_factory.mktemp("spread") / "fleet")


@pytest.fixture(scope="module")
def speaker_listener(tmp_path_factory, host_bundle):
    bundle = host_bundle("speaker_listener")
    return bundle, build_robots(bundle, tmp_path_factory.mktemp("speaker_listener") / "fleet")


def _team_returns(bundle: Path, episodes: int, seed: int) -> list[float]:
    """Per-episode returns of the bundle's team step (policy.so), as `kdcc eval` runs it."""
    spec, policy, _ = open_bundle_policy(bundle)
    return run_episodes(make_env(spec.env), policy, episodes, seed).returns.tolist()


@pytest.mark.parametrize("team", ["spread", "speaker_listener"])
def test_fleet_returns_equal_kdcc_eval(team, request, tmp_path):
    bundle, binaries = request.getfixturevalue(team)
    assert [b.name for b in binaries] == (["robot_agent"] * 3 if team == "spread" else ["robot_agent0", "robot_agent1"])
    summary = run_fleet(bundle, binaries, tmp_path, episodes=EPISODES, seed=SEED, deadline_ms=500)
    n = bundle_spec(bundle).n_agents
    assert summary["misses"] == summary["late"] == summary["errors"] == [0] * n
    assert summary["ticks"] == EPISODES * 25
    assert summary["returns"] == _team_returns(bundle, EPISODES, SEED)
    assert summary["mean"] == evaluate(bundle, episodes=EPISODES, seed=SEED).mean


def test_lost_and_late_packets_are_counted_per_robot(spread, tmp_path):
    """Robot 0 drops every 7th request, robot 2 answers every 12th after 225 ms (deadline 150 ms):
    over 50 ticks, 7 and 4 misses; each late answer arrives while the next tick waits and is
    discarded there, counted as late."""
    bundle, binaries = spread
    drills = {0: ("--ignore-every", "7"), 2: ("--sleep-every", "12", "--sleep-ms", "225")}
    summary = run_fleet(bundle, binaries, tmp_path, episodes=2, seed=SEED, deadline_ms=150, drills=drills)
    assert summary["ticks"] == 50
    assert summary["misses"] == [7, 0, 4]
    assert summary["late"] == [0, 0, 4] and summary["errors"] == [0, 0, 0]
    spec = bundle_spec(bundle)
    model = ModelFleet(spec, [ModelRobot(bundle, spec, 0, ignore_every=7), ModelRobot(bundle, spec, 1),
                              ModelRobot(bundle, spec, 2, sleep_every=12)])
    assert summary["returns"] == run_episodes(make_env(spec.env), model, 2, SEED).returns.tolist()
    assert summary["returns"] != _team_returns(bundle, 2, SEED)  # the faults changed what the team did


def test_a_killed_robot_gets_the_fallback_and_a_restarted_one_rejoins_at_its_reset_state(spread, tmp_path):
    """Robot 1 dies by SIGKILL on its 31st request (episode 1, step 5); the others keep acting, it
    gets action 0 while dead; restarted on its port, it acts again from its reset state."""
    bundle, binaries = spread
    spec = bundle_spec(bundle)
    out, trace = tmp_path / "summary.json", tmp_path / "trace.jsonl"
    with robots(binaries, tmp_path, {1: ("--die-after", "30")}) as team:
        sim = start_simulator(bundle, [r.port for r in team], out, episodes=EPISODES, seed=SEED, deadline_ms=50,
                              trace=trace)
        assert team[1].proc.wait(timeout=60) == -signal.SIGKILL
        team[1].stop()
        team[1] = Robot(binaries[1], 1, tmp_path / "robot1.log", port=team[1].port)
        summary = finish_simulator(sim, out, 60 + EPISODES * 25 * 0.05)
    ticks = [json.loads(line) for line in trace.read_text().splitlines()]
    answered = [t["answered"] for t in ticks]
    rejoined = next((k for k in range(31, len(ticks)) if answered[k][1]), None)
    assert rejoined is not None, "the restarted robot never answered"
    assert all(a[1] for a in answered[:30]) and not any(a[1] for a in answered[30:rejoined])
    assert all(a[1] for a in answered[rejoined:]) and all(a[0] and a[2] for a in answered)
    assert summary["misses"] == [0, rejoined - 30, 0] and summary["late"] == summary["errors"] == [0, 0, 0]
    assert all(t["actions"][1] == 0 for t in ticks[30:rejoined])  # the fallback while dead
    # The restarted robot acts as a fresh agent from the tick it rejoined: the model says so exactly.
    model = ModelFleet(spec, [ModelRobot(bundle, spec, 0), ModelRobot(bundle, spec, 1, die_after=30),
                              ModelRobot(bundle, spec, 2)], restarts={rejoined: (1, ModelRobot(bundle, spec, 1))})
    expected = run_episodes(make_env(spec.env), model, EPISODES, SEED).returns.tolist()
    assert summary["returns"] == expected
    clean = _team_returns(bundle, EPISODES, SEED)
    assert summary["returns"][0] == clean[0]  # before the kill, nothing changed
    if rejoined < 50:  # back before episode 2 began: that episode is the clean one again
        assert summary["returns"][2] == clean[2]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_simulator_gives_up_on_robots_that_never_answer(spread, tmp_path):
    """Nothing listens on the robots' ports: the start-up wait ends, naming them, and no tick runs."""
    bundle, _ = spread
    ports = [_free_udp_port() for _ in range(3)]
    sim = start_simulator(bundle, ports, tmp_path / "summary.json", episodes=1, seed=SEED, deadline_ms=50,
                          ready_timeout_s=1)
    status, stderr = wait_simulator(sim, 60)
    assert status == 1 and f"no answer within 1 s from agent 0 (port {ports[0]})" in stderr
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.slow
@needs_aarch64_runtime
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None or shutil.which("qemu-aarch64") is None
                    or not Path("/usr/aarch64-linux-gnu/lib").is_dir(),
                    reason="needs g++-aarch64-linux-gnu and qemu-user")
def test_orin_cpu_robots_under_qemu_equal_kdcc_eval(tmp_path):
    bundle = _compiled(tmp_path, make_tiny_teacher, "orin-cpu")
    binaries = build_robots(bundle, tmp_path / "fleet", f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_AARCH64}")
    assert binaries[0].read_bytes()[18:20] == (183).to_bytes(2, "little")  # EM_AARCH64
    summary = run_fleet(bundle, binaries, tmp_path / "run", episodes=1, seed=SEED, deadline_ms=5000, wrapper=QEMU,
                        ready_timeout_s=120)
    assert summary["misses"] == [0, 0, 0]
    # The bundle has no library for this machine: kdcc eval runs its student.onnx, whose actions are the
    # team step's; the robots ran the aarch64 role libraries.
    assert np.array(summary["returns"]).tolist() == [evaluate(bundle, episodes=1, seed=SEED).mean]
