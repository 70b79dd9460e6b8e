"""Calling a VM-free step library from Python (ctypes): numpy views of its own buffers, no copies.

The library owns aligned input buffers and the planned storages its outputs live in
(`direct_source`); they are wrapped once as numpy arrays, so a step is: write the inputs'
views, one foreign call, read the outputs' views. `DirectAgent` carries one robot's hidden
state and last action between steps, as the C API does.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.targets.tvm.runtime import check_runnable

__all__ = ["DirectStep", "DirectAgent", "DirectPolicy", "direct_path"]


def _load(library: Path) -> ctypes.CDLL:
    check_runnable(library, "compiled library")
    try:
        lib = ctypes.CDLL(str(library), mode=ctypes.RTLD_LOCAL)
    except OSError as e:
        raise KdccError(f"{library}: cannot load the VM-free library ({e})") from None
    try:
        lib.kdcc_step_create.restype = ctypes.c_void_p
        lib.kdcc_step_run.argtypes = [ctypes.c_void_p]
        lib.kdcc_step_input.argtypes = lib.kdcc_step_output.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.kdcc_step_input.restype = lib.kdcc_step_output.restype = ctypes.c_void_p
        lib.kdcc_step_input_bytes.restype = lib.kdcc_step_output_bytes.restype = ctypes.c_long
        lib.kdcc_step_destroy.argtypes = [ctypes.c_void_p]
    except AttributeError as e:
        raise KdccError(f"{library}: not a kdcc VM-free step library ({e})") from None
    return lib


def direct_path(record) -> str | None:
    """The VM-free library's path in a profile.json library record, or None (skipped, absent, malformed)."""
    direct = record.get("direct") if isinstance(record, dict) else None
    path = direct.get("path") if isinstance(direct, dict) else None
    return path if isinstance(path, str) and path else None


def _view(address: int, nbytes: int, like) -> np.ndarray:
    dtype = np.dtype(str(like.dtype).replace("torch.", ""))
    buffer = (ctypes.c_char * nbytes).from_address(address)
    return np.frombuffer(buffer, dtype=dtype).reshape(tuple(like.shape))


class DirectStep:
    """`step(*inputs) -> outputs` of a VM-free library; `example_inputs` and `example_outputs` give
    shapes and dtypes (the step's signature)."""

    def __init__(self, library: str | Path, example_inputs, example_outputs):
        self._lib = lib = _load(Path(library))
        self._handle = lib.kdcc_step_create()
        if not self._handle:
            raise KdccError(f"{library}: cannot allocate the step's buffers")
        self._run = lib.kdcc_step_run
        self.inputs = [_view(lib.kdcc_step_input(self._handle, i), lib.kdcc_step_input_bytes(i), x)
                       for i, x in enumerate(example_inputs)]
        self.outputs = [_view(lib.kdcc_step_output(self._handle, i), lib.kdcc_step_output_bytes(i), y)
                        for i, y in enumerate(example_outputs)]

    def run(self) -> None:
        """One step on what the input views hold; the output views then hold the results."""
        if self._run(self._handle) != 0:
            raise KdccError("VM-free step: a kernel failed")

    def __call__(self, *inputs) -> tuple[np.ndarray, ...]:
        for view, value in zip(self.inputs, inputs):
            view[...] = value
        self.run()
        return tuple(np.array(o) for o in self.outputs)

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.kdcc_step_destroy(self._handle)
            self._handle = None


class DirectAgent(DirectStep):
    """One robot's agent step: `act(obs) -> action`, hidden state and last action carried (inputs:
    obs, last_action, hidden[, agent_id]; outputs: action, q, new_hidden)."""

    def __init__(self, library: str | Path, example_inputs, example_outputs, agent_id: int | None = None):
        super().__init__(library, example_inputs, example_outputs)
        if agent_id is not None:
            self.inputs[3][...] = agent_id
        self.reset()

    def reset(self) -> None:
        self.inputs[1][...] = -1
        self.inputs[2][...] = 0.0

    def act(self, obs) -> int:
        inputs, outputs = self.inputs, self.outputs
        inputs[0][...] = obs
        self.run()
        action = int(outputs[0][0])
        inputs[1][0] = action
        inputs[2][...] = outputs[2]
        return action


class DirectPolicy(DirectStep):
    """The team step of a VM-free library with the interface of `runtime.HostPolicy`: `step(obs,
    last_actions, state) -> (actions, q_tot)` from the carried hidden state, `call(...)` the raw step."""

    def __init__(self, library: str | Path, spec):
        from kdcc.ir.team import team_example_inputs

        n, h, a = spec.n_agents, spec.agent.hidden_dim, spec.n_actions
        outputs = (np.zeros(n, np.int64), np.zeros((n, a), np.float32), np.zeros((n, h), np.float32),
                   np.zeros(1, np.float32))
        super().__init__(library, team_example_inputs(spec), outputs)
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self.inputs[2][...] = 0.0

    def call(self, obs, last_actions, hidden, state) -> tuple[np.ndarray, ...]:
        return self(obs, last_actions, hidden, state)

    def step(self, obs, last_actions, state) -> tuple[np.ndarray, float]:
        inputs, outputs = self.inputs, self.outputs
        inputs[0][...], inputs[1][...], inputs[3][...] = obs, last_actions, state
        self.run()
        inputs[2][...] = outputs[2]
        return outputs[0].copy(), float(outputs[3][0])
