"""Concurrent use, no network, limited resources: a compile either finishes whole or fails in one line
and leaves nothing behind."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from kdcc.core.fileio import atomic_write_tree
from tests.conftest import make_tiny_teacher

FAST_OPTS = ["--opt", "distill.steps=30", "--opt", "distill.dagger_every=0", "--opt", "approximate-mixer.steps=30"]


def _compile_cmd(teacher, out, *extra):
    return [sys.executable, "-m", "kdcc", "compile", str(teacher), "--target", "host", "-o", str(out), "--no-build",
            "--budget-flops", "2x", "--keep", "off", "--certify-episodes", "0", "-q", *FAST_OPTS, *extra]


def _env():
    return {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1"}


def test_two_compiles_into_one_output_one_wins_the_other_fails_cleanly(tmp_path):
    teacher = make_tiny_teacher(tmp_path / "t.pt")
    out = tmp_path / "out"
    first = subprocess.Popen(_compile_cmd(teacher, out, "--opt", "distill.steps=400"), env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".out.kdcc-lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), "the first compile never took the output's lock"
    second = subprocess.run(_compile_cmd(teacher, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0 and "another kdcc compile is writing it now" in second.stderr
    assert first.wait(timeout=600) == 0, first.stderr
    assert (out / "report.md").is_file() and (out / "record" / "manifest.json").is_file()
    assert not lock.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out", "t.pt"]


def test_a_tree_being_replaced_is_always_there_and_whole(tmp_path):
    out = tmp_path / "bundle"
    atomic_write_tree(out, {"a.txt": b"0" * 4096, "b.txt": b"0" * 4096})
    seen, stop = [], threading.Event()

    def reader():  # as eval opens a bundle: file by file, by path (raises if `out` is ever missing)
        while not stop.is_set():
            a, b = (out / "a.txt").read_bytes(), (out / "b.txt").read_bytes()
            seen.append((len(a), len(set(a)), len(b)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(1, 60):
            atomic_write_tree(out, {"a.txt": str(k % 10).encode() * 4096, "b.txt": b"x" * 4096})
    finally:
        stop.set()
        thread.join(timeout=30)
    bad = [s for s in seen if s != (4096, 1, 4096)]  # every file whole, never a mix of two writes
    assert seen and not bad, bad[:5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no old trees or temp dirs left


@pytest.mark.skipif(shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"]).returncode != 0,
                    reason="needs unshare -rn (a user and network namespace)")
def test_compile_and_eval_need_no_network(tmp_path):
    teacher = make_tiny_teacher(tmp_path / "t.pt")
    out = tmp_path / "out"
    run = subprocess.run(["unshare", "-rn", *_compile_cmd(teacher, out)], env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    ev = subprocess.run(["unshare", "-rn", sys.executable, "-m", "kdcc", "eval", str(teacher), "--episodes", "2",
                         "--json"], env=_env(), capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert (out / "report.md").is_file()


def test_a_full_disk_fails_in_one_line_and_leaves_nothing(tmp_path, tmp_path_factory):
    from kdcc.cli.app import main

    teacher = make_tiny_teacher(tmp_path / "t.pt")
    out = tmp_path / "out"
    data = tmp_path_factory.mktemp("data") / "data.npz"  # 4 episodes, not the 200 a compile collects by default
    assert main(["collect", str(teacher), "-o", str(data), "--episodes", "4", "--seed", "1", "-q"]) == 0

    def small_files():  # writes past 64 KiB fail with EFBIG, as on a full disk (SIGXFSZ ignored)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    run = subprocess.run(_compile_cmd(teacher, out, "--dataset", str(data)), env=_env(), capture_output=True,
                         text=True, timeout=600, preexec_fn=small_files)
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip()
    assert "\n" not in line and "File too large" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.pt"]


_UNDER_A_MEMORY_LIMIT = r"""
import resource, sys
from kdcc.cli import app
import matplotlib.pyplot, onnx, onnxruntime, onnxsim, torch, tvm.relax  # what a compile loads, loaded first
size = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
limit = size + int(sys.argv[1]) * 2**20  # MiB of address space beyond what is mapped now: far less than needed
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
app.cli(sys.argv[2:])  # as the `kdcc` command ends
"""


# Where the allocation fails differs by how little is left: in a compile's training (torch), while collect
# imports MPE and its libraries (a C extension's bare SystemError, an unmappable library), in eval's rollouts.
@pytest.mark.parametrize("command,headroom_mib", [("compile", 32), ("collect", 4), ("collect", 16), ("eval", 4)])
def test_out_of_memory_fails_in_one_line_and_leaves_nothing(tmp_path, command, headroom_mib):
    teacher = make_tiny_teacher(tmp_path / "t.pt")
    out = tmp_path / "out"
    cmd = {"compile": _compile_cmd(teacher, out)[3:],
           "collect": ["collect", str(teacher), "-o", str(tmp_path / "data.npz"), "--episodes", "200"],
           "eval": ["eval", str(teacher), "--episodes", "200"]}[command]
    run = subprocess.run([sys.executable, "-c", _UNDER_A_MEMORY_LIMIT, str(headroom_mib), *cmd], env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr[-2000:]
    line = run.stderr.strip()
    assert "\n" not in line and "error: out of memory" in line and "nothing was written" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.pt"]


_EXHAUST_THEN_CLASSIFY = r"""
import resource, sys
from kdcc.cli.app import _out_of_memory
error = SystemError("<built-in function where> returned NULL without setting an exception")
print(_out_of_memory(error))  # no limit: a bare SystemError is a bug, not memory
size = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 64 * 2**20, size + 64 * 2**20))
chunks = []
try:
    while True:
        chunks.append(bytearray(2**20))
except MemoryError:
    chunks.clear()
print(_out_of_memory(error), _out_of_memory(SystemError("a different bug")))
"""


def test_a_bare_system_error_is_out_of_memory_only_at_the_limit():
    run = subprocess.run([sys.executable, "-c", _EXHAUST_THEN_CLASSIFY], env=_env(), capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.split() == ["False", "True", "False"], run.stderr
