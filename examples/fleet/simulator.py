"""Runs episodes of the bundle's world for a fleet of robot processes that each act on their own observation over UDP.

    .venv/bin/python examples/fleet/simulator.py BUNDLE --ports 9000,9001,9002 --episodes 5 --seed 0

Every control tick sends robot i (127.0.0.1:PORTS[i]) only `obs[i][:spec.obs_size(i)]` and waits
for all replies until the tick's deadline; a robot that has not answered by then (dead, lost or late
packet, an error) gets the fallback action and one miss. Replies to an older tick are discarded and
counted as late. The team loop is kdcc's own `run_episodes`, so with every robot answering the returns
are those of `kdcc eval BUNDLE` on the same seeds. Prints (or writes to --out) a JSON summary; the
wire format is in README.md. Every wait is bounded: a run lasts at most ticks x deadline, plus the
start-up wait (--ready-timeout).

The world is the one the bundle's spec names (`spec.env.id`: an mpe2 scenario, `rware:…`, `lbforaging:…`,
`vmas:…`, `pettingzoo:MODULE:FUNCTION`), made by kdcc's `make_env`; nothing here knows a world by name.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

import numpy as np
import wire  # beside this script: the datagram layout

from kdcc.core.errors import KdccError
from kdcc.ir.spec import MarlSpec
from kdcc.marl.rollout import run_episodes
from kdcc.marl.worlds import World, make_env

HOST = "127.0.0.1"


class Fleet:
    """The robots behind the team Policy interface of `run_episodes` (last actions and state unused:
    each robot keeps its own)."""

    def __init__(self, spec: MarlSpec, ports: list[int], deadline_s: float, fallback: int, trace=None):
        self.spec, self.ports, self.deadline_s, self.fallback, self.trace = spec, ports, deadline_s, fallback, trace
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        n = spec.n_agents
        self.misses, self.late, self.errors = [0] * n, [0] * n, [0] * n
        self.episode, self.t, self.ticks = -1, 0, 0

    def wait_ready(self, timeout_s: float) -> None:
        """Ping every robot until each answers; SystemExit naming those that never did."""
        waiting, end = set(range(self.spec.n_agents)), time.monotonic() + timeout_s
        while waiting and time.monotonic() < end:
            for i in waiting:
                self.sock.sendto(wire.pack(wire.PING, i), (HOST, self.ports[i]))
            pong_by = min(time.monotonic() + 0.1, end)
            while waiting and (got := self._receive(pong_by)) is not None:
                if got[0].kind == wire.PONG:
                    waiting.discard(got[0].agent)
        if waiting:
            names = ", ".join(f"agent {i} (port {self.ports[i]})" for i in sorted(waiting))
            raise SystemExit(f"simulator: no answer within {timeout_s:g} s from {names}")

    def reset(self) -> None:
        self.episode, self.t = self.episode + 1, 0

    def step(self, obs, last_actions, state) -> np.ndarray:
        own = [obs[i, : self.spec.obs_size(i)] for i in range(self.spec.n_agents)]
        for i, o in enumerate(own):
            self.sock.sendto(wire.step_request(i, self.episode, self.t, o), (HOST, self.ports[i]))
        got: dict[int, int] = {}
        end = time.monotonic() + self.deadline_s
        while len(got) < self.spec.n_agents and (reply := self._receive(end)) is not None:
            header, datagram = reply
            if header.kind != wire.STEP_REPLY or header.agent in got:
                continue
            if (header.episode, header.step) != (self.episode, self.t):
                self.late[header.agent] += 1  # an answer to an older tick: its action is not applied
                continue
            action = wire.reply_action(datagram, header)
            if action is None or not 0 <= action < self.spec.action_size(header.agent):
                self.errors[header.agent] += 1  # answered, but nothing to act on: a miss below
                continue
            got[header.agent] = action
        actions = np.array([got.get(i, self.fallback) for i in range(self.spec.n_agents)], dtype=np.int64)
        for i in range(self.spec.n_agents):
            self.misses[i] += i not in got
        if self.trace is not None:
            self.trace.write(json.dumps({"episode": self.episode, "step": self.t, "obs": [o.tolist() for o in own],
                                         "actions": actions.tolist(),
                                         "answered": [i in got for i in range(self.spec.n_agents)]}) + "\n")
        self.t, self.ticks = self.t + 1, self.ticks + 1
        return actions

    def _receive(self, end: float):
        """(header, datagram) of the next datagram of this protocol from a robot's own port, or None
        when nothing came before `end` (time.monotonic())."""
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                datagram, (_, port) = self.sock.recvfrom(65536)
            except socket.timeout:
                return None
            except ConnectionRefusedError:  # an ICMP error for a dead robot's port, on systems that report it
                continue
            header = wire.unpack_header(datagram)
            if header is not None and header.agent < len(self.ports) and port == self.ports[header.agent]:
                return header, datagram
        return None

    def close(self) -> None:
        for i, port in enumerate(self.ports):
            self.sock.sendto(wire.pack(wire.BYE, i), (HOST, port))
        self.sock.close()


def load_spec(bundle: Path) -> MarlSpec:
    try:
        return MarlSpec.from_dict(json.loads((bundle / "profile.json").read_text())["spec"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"simulator: {bundle}: not a kdcc bundle ({e})") from None


def open_world(bundle: Path, spec: MarlSpec) -> World:
    """The world the bundle's spec names; SystemExit when it cannot be made (a missing extra, an unknown id)
    or does not give the robots the observations they were built for."""
    try:
        env = make_env(spec.env)
    except KdccError as e:
        raise SystemExit(f"simulator: {bundle}: {e}") from None
    if env.n_agents != spec.n_agents or env.obs_dim != spec.obs_dim:
        raise SystemExit(f"simulator: {bundle}: the robots were built for {spec.n_agents} agents with "
                         f"{spec.obs_dim} observation floats, {spec.env.id} has {env.n_agents} with {env.obs_dim}")
    return env


def run(bundle: Path, ports: list[int], episodes: int, seed: int, deadline_s: float, fallback: int,
        ready_timeout_s: float, trace_path: Path | None = None) -> dict:
    spec = load_spec(bundle)
    if len(ports) != spec.n_agents:
        raise SystemExit(f"simulator: --ports names {len(ports)} robots, the team has {spec.n_agents} agents")
    smallest = min(spec.action_size(i) for i in range(spec.n_agents))
    if not 0 <= fallback < smallest:
        raise SystemExit(f"simulator: --fallback {fallback} is not an action of every agent (0..{smallest - 1})")
    env = open_world(bundle, spec)
    trace = trace_path.open("w") if trace_path else None
    fleet = Fleet(spec, ports, deadline_s, fallback, trace)
    try:
        fleet.wait_ready(ready_timeout_s)
        stats = run_episodes(env, fleet, episodes, seed)
    finally:
        fleet.close()
        if trace is not None:
            trace.close()
    return {"world": spec.env.id, "scenario": spec.env.id, "episodes": episodes, "seed": seed,
            "deadline_ms": deadline_s * 1e3, "fallback_action": fallback, "returns": stats.returns.tolist(),
            "mean": stats.mean, "ticks": fleet.ticks, "misses": fleet.misses, "late": fleet.late,
            "errors": fleet.errors}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path, help="the kdcc bundle the robots run (its profile.json gives the team)")
    p.add_argument("--ports", required=True, help="robot i's UDP port on 127.0.0.1, comma separated, agent 0 first")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED + i (as kdcc eval)")
    p.add_argument("--deadline-ms", type=float, default=50.0, help="how long a tick waits for the robots")
    p.add_argument("--fallback", type=int, default=0, help="the action of a robot that missed the deadline "
                   "(0: the no-op of MPE's moving agents, RWARE, LBF and VMAS; the speaker's first word)")
    p.add_argument("--ready-timeout", type=float, default=30.0, help="seconds to wait for every robot at start")
    p.add_argument("--trace", type=Path, help="write one JSON line per tick: own observations, actions, who answered")
    p.add_argument("--out", type=Path, help="write the JSON summary here instead of stdout")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.deadline_ms <= 0:
        p.error("--episodes and --deadline-ms must be positive")
    try:
        ports = [int(v) for v in args.ports.split(",")]
    except ValueError:
        p.error(f"--ports {args.ports!r}: expected comma-separated integers")
    summary = run(args.bundle, ports, args.episodes, args.seed, args.deadline_ms / 1e3, args.fallback,
                  args.ready_timeout, args.trace)
    text = json.dumps(summary, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
