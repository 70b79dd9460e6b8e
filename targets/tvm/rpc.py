"""Timing a compiled step on a device: here, or on a board through TVM RPC.

A board runs `python -m tvm.exec.rpc_server` (README, "Measure on your Orin"), alone
(`--rpc HOST:PORT`) or registered with a tracker under a key (`--rpc-tracker HOST:PORT
--rpc-key KEY`, what MetaSchedule's RPC runner needs too). Libraries are uploaded under a
name carrying their sha256 (dlopen caches by path: a reused name would run the old library), once
per session (uploading a loaded library again rewrites a file the server has mapped, and the
server's worker crashes in its next dlsym), and timed by TVM's `time_evaluator` *on the device*, one call per sample: the network is not
in the figures, and the timer costs the same on both sides of a comparison. The step is
bound once with `save_function` (a VM function returning a tuple cannot be timed over RPC
directly, and binding keeps the argument lookup out of the timed call).

`Remote` is plain data (no TVM import) so the CLI can parse the options cheaply.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError

__all__ = ["Remote", "parse_remote", "Timer", "open_timer"]

CONNECT_TIMEOUT_S = 60.0  # a tracker with a busy board: long enough to wait a turn, bounded


@dataclass(frozen=True)
class Remote:
    """Where the device is: a tracker and a key, or one RPC server."""

    host: str
    port: int
    key: str | None = None  # None: `host:port` is the RPC server itself

    @property
    def tracker(self) -> bool:
        return self.key is not None

    def describe(self) -> str:
        return f"rpc tracker {self.host}:{self.port} key {self.key}" if self.tracker else f"rpc {self.host}:{self.port}"


def _host_port(option: str, text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise KdccError(f"{option}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_remote(tracker: str | None, key: str | None, direct: str | None) -> Remote | None:
    """The RPC options of a command as a Remote (None: run here); a one-line error when they clash."""
    if direct and (tracker or key):
        raise KdccError("--rpc names one RPC server: give it alone, or --rpc-tracker with --rpc-key")
    if direct:
        return Remote(*_host_port("--rpc", direct))
    if bool(tracker) != bool(key):
        raise KdccError("--rpc-tracker and --rpc-key go together (the key the board's rpc_server registered)")
    if tracker:
        return Remote(*_host_port("--rpc-tracker", tracker), key=key)
    return None


def _connect(remote: Remote):
    from tvm import rpc

    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            if remote.tracker:
                return rpc.connect_tracker(remote.host, remote.port).request(
                    remote.key, priority=1, session_timeout=0, max_retry=1)
            return rpc.connect(remote.host, remote.port)
        except (RuntimeError, OSError, TimeoutError) as e:
            if time.monotonic() > deadline:
                raise KdccError(f"{remote.describe()}: no session within {CONNECT_TIMEOUT_S:.0f} s "
                                f"({' '.join(str(e).split())[:160]})") from None
            time.sleep(1.0)


class Timer:
    """Loads libraries on one device (this machine, or a remote session) and times their `main`."""

    def __init__(self, remote: Remote | None):
        import tvm

        self.remote = remote
        self.how = remote.describe() if remote else "local"
        self._session = _connect(remote) if remote else None
        self._tvm = tvm
        self._loaded: dict[str, object] = {}  # upload name -> the module loaded in this session

    def close(self) -> None:
        """End the remote session (its worker process on the board exits with it)."""
        self._session = None
        self._loaded.clear()
        import gc

        gc.collect()

    def device(self, kind: str):
        """The TVM device a library of `kind` ("cpu" | "gpu") runs on, here or remote."""
        s = self._session
        if kind == "gpu":
            return s.cuda() if s else self._tvm.cuda()
        return s.cpu() if s else self._tvm.cpu()

    def has_device(self, kind: str) -> bool:
        try:
            return bool(self.device(kind).exist)
        except Exception:  # a runtime without CUDA raises rather than answering False
            return False

    def load(self, library: Path):
        if self._session is None:
            return self._tvm.runtime.load_module(str(library))
        data = library.read_bytes()
        name = f"kdcc-{hashlib.sha256(data).hexdigest()[:16]}-{library.name}"
        if name in self._loaded:  # uploading it again would rewrite a file the server has mapped: it crashes
            return self._loaded[name]
        try:
            self._session.upload(bytearray(data), name)
            self._loaded[name] = self._session.load_module(name)
            return self._loaded[name]
        except Exception as e:  # the server's error, e.g. an ELF of another machine
            raise KdccError(f"{library}: the remote device cannot load it ({' '.join(str(e).split())[:200]})") from None

    def sample(self, library: Path, kind: str, inputs, calls: int, warmup: int = 100) -> np.ndarray:
        """Seconds of each of `calls` timed calls of the library's `main` on `inputs` (after `warmup`)."""
        from tvm import relax

        dev = self.device(kind)
        vm = relax.VirtualMachine(self.load(library), dev)
        args = [self._tvm.runtime.tensor(np.ascontiguousarray(np.asarray(x)), dev) for x in inputs]
        vm.save_function("main", "kdcc_timed", *args)
        if warmup:
            vm.time_evaluator("kdcc_timed", dev, number=warmup, repeat=1)()
        return np.asarray(vm.time_evaluator("kdcc_timed", dev, number=1, repeat=calls)().results, dtype=float)

    def mean_call_s(self, library: Path, kind: str, inputs, window_ms: int) -> float:
        """Mean seconds per call over a window of at least `window_ms` (for power sampling)."""
        from tvm import relax

        dev = self.device(kind)
        vm = relax.VirtualMachine(self.load(library), dev)
        vm.save_function("main", "kdcc_timed",
                         *[self._tvm.runtime.tensor(np.ascontiguousarray(np.asarray(x)), dev) for x in inputs])
        return float(vm.time_evaluator("kdcc_timed", dev, number=100, repeat=1, min_repeat_ms=window_ms)().mean)


def open_timer(remote: Remote | None) -> Timer:
    return Timer(remote)
