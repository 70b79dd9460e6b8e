"""Running a host library from Python: the team step at ~µs per call, hidden state carried.

`vm["main"]` is fetched once and inputs are preallocated TVM tensors written through numpy
views (no per-call copies). Set `TVM_NUM_THREADS=1` for tiny graphs: waking TVM's thread
pool costs ~2 µs per call. A library built for another machine (an orin bundle's aarch64
library) is refused with a KdccError before TVM tries to load it.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.ir.spec import MarlSpec

__all__ = ["HostPolicy", "HostStep", "HostAgent", "check_runnable"]


class HostPolicy:
    """A host library stepped from Python, carrying the agents' hidden state between steps.

    `step(obs, last_actions, state) -> (actions, q_tot)`; `call(...)` is the raw team step
    with an explicit hidden state, returning (actions, q, new_hidden, q_tot).
    """

    def __init__(self, library: str | Path, spec: MarlSpec):
        import tvm
        from tvm import relax

        check_runnable(Path(library), "compiled policy library")
        self.spec = spec
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
        self._main = self._vm["main"]
        self._packed = self._vm["main_packed"]  # one result vector: see lowering.to_relax
        n, h = spec.n_agents, spec.agent.hidden_dim
        a_end, q_end = n, n + n * spec.n_actions
        self._slices = (slice(0, a_end), slice(q_end, q_end + n * h))
        shapes = {"obs": ((n, spec.obs_dim), "float32"), "last_actions": ((n,), "int64"),
                  "hidden": ((n, h), "float32"), "state": ((spec.state_dim,), "float32")}
        self._tensors = [tvm.runtime.tensor(np.zeros(s, d)) for s, d in shapes.values()]
        self._views = [np.from_dlpack(t) for t in self._tensors]
        self.reset()

    def reset(self) -> None:
        """Start of an episode: zero hidden state (as EPyMARL's init_hidden)."""
        self._views[2][...] = 0.0

    def call(self, obs, last_actions, hidden, state) -> tuple[np.ndarray, ...]:
        for view, value in zip(self._views, (obs, last_actions, hidden, state)):
            view[...] = value
        return tuple(np.from_dlpack(t) for t in self._main(*self._tensors))

    def step(self, obs, last_actions, state) -> tuple[np.ndarray, float]:
        """One team step from the carried hidden state, through `main_packed` (one result tensor,
        read through a dlpack view: converting four result tensors would cost ~3.5 µs more)."""
        views = self._views
        views[0][...], views[1][...], views[3][...] = obs, last_actions, state
        out = np.from_dlpack(self._packed(*self._tensors))
        actions, hidden = self._slices
        views[2].reshape(-1)[...] = out[hidden]
        return out[actions].astype(np.int64), float(out[-1])


def check_runnable(library: Path, what: str) -> None:
    """A KdccError unless `library` exists and is an ELF file of this machine's architecture."""
    if not library.is_file():
        raise KdccError(f"{library}: {what} not found")
    if platform.machine() not in _elf_machine(library):
        raise KdccError(f"{library}: built for another machine, cannot run on {platform.machine()}")


def _elf_machine(path: Path) -> tuple[str, ...]:
    """Machine names an ELF file can run on, from its e_machine field."""
    with path.open("rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        raise KdccError(f"{path}: not an ELF shared library")
    return {62: ("x86_64", "AMD64"), 183: ("aarch64", "arm64")}.get(int.from_bytes(head[18:20], "little"), ())


class HostStep:
    """Any step library of this machine (an agent step, the team monitor) called from Python:
    `step(*inputs) -> outputs` as numpy arrays, inputs written into preallocated tensors."""

    def __init__(self, library: str | Path, example_inputs):
        import tvm
        from tvm import relax

        check_runnable(Path(library), "compiled library")
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
        self._main = self._vm["main"]
        self._tensors = [tvm.runtime.tensor(np.zeros(tuple(x.shape), str(x.dtype).replace("torch.", "")))
                         for x in example_inputs]
        self._views = [np.from_dlpack(t) for t in self._tensors]

    def __call__(self, *inputs) -> tuple[np.ndarray, ...]:
        for view, value in zip(self._views, inputs):
            view[...] = value
        outs = self._main(*self._tensors)
        outs = (outs,) if hasattr(outs, "shape") else outs  # one tensor, or an array of them
        return tuple(np.array(np.from_dlpack(o)) for o in outs)


class HostAgent(HostStep):
    """One robot's agent step from Python at ~µs per call: `act(obs) -> action`, its hidden state and
    last action carried in the input tensors (through `main_packed`, one result vector, as HostPolicy)."""

    def __init__(self, library: str | Path, example_inputs, n_actions: int, agent_id: int | None = None):
        super().__init__(library, example_inputs)  # views: obs, last_action, hidden[, agent_id]
        self._packed = self._vm["main_packed"]
        h = self._views[2].shape[-1]
        self._hidden = slice(1 + n_actions, 1 + n_actions + h)
        if agent_id is not None:
            self._views[3][...] = agent_id
        self.reset()

    def reset(self) -> None:
        self._views[1][...] = -1
        self._views[2][...] = 0.0

    def act(self, obs) -> int:
        views = self._views
        views[0][...] = obs
        out = np.from_dlpack(self._packed(*self._tensors))
        action = int(out[0])
        views[1][...] = action
        views[2].reshape(-1)[...] = out[self._hidden]
        return action
