"""A bundle's robots, each loaded on its own: `kdcc eval BUNDLE --decentralised`.

Every agent gets its own instance of its role's library (`lib/<device>/<role>.so`
when one runs on this machine, else `agents/<role>.onnx` in ONNX Runtime) and is
given nothing but its own observation; its hidden state and its last action stay
inside it, as on a robot. Behind `kdcc.marl.agents.DecentralisedPolicy` they play
the team's episodes, so the score is that of robots that exchange nothing.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.ir.agent_step import agent_example_inputs
from kdcc.ir.roles import Role, role_of
from kdcc.ir.spec import MarlSpec, check_claimed_sizes
from kdcc.marl.agents import DecentralisedPolicy
from kdcc.targets.bundle.integrity import check_bundle
from kdcc.targets.bundle.policy import bundle_bytes

__all__ = ["open_agent_policies"]


class _BundleAgent:
    """One robot over a step function `call(*inputs) -> (action, q, new_hidden)` of its role."""

    def __init__(self, spec: MarlSpec, agent: int, call):
        self.role: Role = role_of(spec, agent)
        self.obs_size, self.call = spec.obs_size(agent), call
        self.agent_id = np.array([agent], dtype=np.int64)
        self.obs = np.zeros((1, self.role.obs_dim), np.float32)
        self.reset()

    def reset(self) -> None:
        self.hidden = np.zeros((1, self.role.hidden_dim), np.float32)
        self.last_action = np.array([-1], dtype=np.int64)

    def act(self, own_obs) -> int:
        self.obs[0, : self.obs_size] = np.asarray(own_obs, dtype=np.float32)[: self.obs_size]
        args = (self.obs, self.last_action, self.hidden) + ((self.agent_id,) if self.role.shared else ())
        action, _, hidden = self.call(*args)
        self.hidden = np.array(hidden, dtype=np.float32).reshape(1, -1)
        self.last_action = np.array(action, dtype=np.int64).reshape(1)
        return int(self.last_action[0])


def _library_call(root: Path, robot: dict, spec: MarlSpec, role: Role):
    """The role's step from its VM-free library when the bundle has one that runs here, else its VM library."""
    from kdcc.targets.tvm.direct_runtime import DirectStep, direct_path
    from kdcc.targets.tvm.runtime import HostStep

    inputs = agent_example_inputs(spec, role)
    outputs = (np.zeros(1, np.int64), np.zeros((1, role.n_actions), np.float32),
               np.zeros((1, role.hidden_dim), np.float32))
    for device, lib in robot.get("libraries", {}).items():
        direct = direct_path(lib)
        try:
            if direct:
                return DirectStep(root / direct, inputs, outputs), f"lib/{device} ({Path(direct).name})"
            return HostStep(root / lib["path"], inputs), f"lib/{device} ({role.name}.so)"
        except KdccError:  # built for another machine
            continue
    return None, None


def _onnx_call(root: Path, robot: dict, role: Role):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(root / robot["onnx"]), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT's own Fail/InvalidGraph types, or a robot entry without its graph
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise KdccError(f"{root}: role {role.name}'s ONNX graph does not load ({first})") from None
    taken = [i.name for i in session.get_inputs()]
    names = ("obs", "last_action", "hidden", "agent_id")
    return (lambda *args: session.run(["action", "q", "new_hidden"],
                                      {n: a for n, a in zip(names, args) if n in taken})), robot["onnx"]


def open_agent_policies(path: str | Path, runner: str = "auto") -> tuple[MarlSpec, DecentralisedPolicy, str]:
    """(spec, the team of independently loaded robots, what runs); `runner`: auto | library | onnx.
    A bundle whose files differ from its manifest is refused."""
    root = Path(path)
    try:
        doc = json.loads((root / "profile.json").read_text())
        spec = MarlSpec.from_dict(doc["spec"])
        robots = {r["role"]: r for r in doc["robots"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise KdccError(f"{root}: no per-robot libraries in this bundle ({e}); recompile it") from None
    check_claimed_sizes(spec, bundle_bytes(root), f"{root}/profile.json")
    check_bundle(root)
    agents, runs = [], set()
    for i in range(spec.n_agents):
        role = role_of(spec, i)
        if role.name not in robots:
            raise KdccError(f"{root}/profile.json: no library for role {role.name} (agent {i})")
        call, what = (None, None) if runner == "onnx" else _library_call(root, robots[role.name], spec, role)
        if call is None:
            if runner == "library":
                raise KdccError(f"{root}: no library of role {role.name} runs on {platform.machine()}")
            call, what = _onnx_call(root, robots[role.name], role)
        agents.append(_BundleAgent(spec, i, call))
        runs.add(what)
    return spec, DecentralisedPolicy(agents), f"{spec.n_agents} agents loaded one by one: {', '.join(sorted(runs))}"
