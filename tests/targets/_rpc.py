"""A TVM RPC tracker and one server registered with it, on 127.0.0.1: the `tracker` fixture of the
tests that reach a device through RPC (kdcc measure, compile --tune, calibrate)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

__all__ = ["KEY", "tracker"]

KEY = "kdcc-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"RPC process exited early with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def _wait_key(port: int, timeout: float) -> None:
    from tvm import rpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if KEY in rpc.connect_tracker("127.0.0.1", port).text_summary():
            return
        time.sleep(0.3)
    pytest.fail(f"no server registered key {KEY} within {timeout} s")


@pytest.fixture(scope="session")
def tracker():
    """A TVM RPC tracker and one server registered under KEY, both on 127.0.0.1, killed at the end of the
    session (started once: bringing them up takes seconds)."""
    tport, sport = _free_port(), _free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                                       "--port", str(tport), "--port-end", str(tport + 1), "--silent"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_port(tport, procs[0], 30)
        procs.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
                                       "--port", str(sport), "--port-end", str(sport + 1), "--tracker",
                                       f"127.0.0.1:{tport}", "--key", KEY],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_key(tport, 30)
        yield f"127.0.0.1:{tport}"
    finally:
        for p in reversed(procs):  # each in its own process group, with the workers it forked
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
