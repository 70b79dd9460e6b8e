"""Each role's torch network, read back out of a bundle's `agents/<role>.onnx`: what `kdcc certify` bounds.

The per-robot ONNX graph is the exported `AgentStep`, and its initializers keep the
network's parameter names (`network.fc1.weight`, `network.rnn.weight_ih`, ...), so the
role's QMIX agent (fc1, GRUCell or Linear, fc2) of the spec's shapes is rebuilt from
them alone — no second copy of the weights in the bundle. The rebuilt step is then run
beside ONNX Runtime on probe inputs, so what is certified is what the robot runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.ir.agent_step import agent_example_inputs, agent_step
from kdcc.ir.roles import team_roles
from kdcc.ir.spec import MarlSpec
from kdcc.marl.qmix import RNNAgent
from kdcc.targets.bundle.integrity import check_bundle

__all__ = ["bundle_agent_networks"]

PREFIX = "network."
TOLERANCE = 1e-4


def _network(path: Path, spec: MarlSpec, role) -> nn.Module:
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    try:
        weights = {t.name[len(PREFIX):]: torch.from_numpy(numpy_helper.to_array(t).copy())
                   for t in onnx.load(str(path)).graph.initializer if t.name.startswith(PREFIX)}
    except (OSError, DecodeError) as e:
        raise KdccError(f"{path}: not a readable ONNX agent step ({e})") from None
    fc1 = weights.get("fc1.weight")
    if fc1 is None:
        raise KdccError(f"{path}: no {PREFIX}fc1.weight initializer; recompile the bundle")
    net = RNNAgent(fc1.shape[1], role.hidden_dim, role.n_actions, use_rnn=spec.recurrent)
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise KdccError(f"{path}: its weights do not fit the spec's agent ({str(e).splitlines()[0]})") from None
    return net.eval()


def _check_against_onnx(path: Path, spec: MarlSpec, role, net: nn.Module) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}
    step = agent_step(spec, role, net).eval()
    for seed in range(4):
        inputs = agent_example_inputs(spec, role, seed)
        with torch.no_grad():
            q = step(*inputs)[1].numpy()
        feed = {n: t.numpy() for n, t in zip(("obs", "last_action", "hidden", "agent_id"), inputs) if n in taken}
        q_onnx = session.run(["q"], feed)[0]
        if not np.allclose(q, q_onnx, atol=TOLERANCE):
            raise KdccError(f"{path}: the network rebuilt from its weights disagrees with the graph "
                            f"(max |ΔQ| {np.abs(q - q_onnx).max():.2e}); it cannot be certified from them")


def bundle_agent_networks(root: str | Path) -> tuple[MarlSpec, dict[str, nn.Module]]:
    """(spec, {role: network}) of a compiled bundle, each network checked against its ONNX graph; a bundle whose
    files differ from its manifest is refused."""
    root = Path(root)
    try:
        doc = json.loads((root / "profile.json").read_text())
        spec = MarlSpec.from_dict(doc["spec"])
        robots = {r["role"]: r for r in doc["robots"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise KdccError(f"{root}: no per-robot agents in this bundle ({e}); recompile it") from None
    check_bundle(root)
    networks = {}
    for role in team_roles(spec):
        if role.name not in robots or "onnx" not in robots[role.name]:
            raise KdccError(f"{root}/profile.json: no ONNX agent step for role {role.name}")
        path = root / robots[role.name]["onnx"]
        networks[role.name] = _network(path, spec, role)
        _check_against_onnx(path, spec, role, networks[role.name])
    return spec, networks
