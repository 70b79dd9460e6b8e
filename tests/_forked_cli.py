"""Run `python -m MODULE ARGS` or `python -c SCRIPT ARGS`, each in a process of its own, forked from a
server that has already imported what every kdcc command imports.

A short command (one refused in its first second) spends ~2 s of its run importing torch; a test that
runs ninety of them (tests/test_bad_inputs.py) spent most of its time there. Here each server imports
`kdcc.api` and `kdcc.cli.app` once, then forks per request: the child changes to the request's
directory, points file descriptors 0, 1 and 2 at /dev/null and two files, runs the module or script as
`__main__` and ends as an interpreter ends (SystemExit's status, or an uncaught exception's traceback and
status 1; threads joined, exit handlers run, output flushed; SIGALRM after the timeout), except that the
modules are not torn down (~0.6 s a process, with no effect a command can show). Each command still runs in
a process of its own, with the same interpreter, environment and directory as a fresh one; only the
imports are shared.
"""

from __future__ import annotations

import itertools
import json
import queue
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["ForkedCli"]

_SERVER = r"""
import atexit, json, os, runpy, signal, sys, threading
import kdcc.api, kdcc.cli.app  # noqa: F401 - what a command imports, once for every child


def run(kind, what, args):
    if kind == "-m":
        sys.argv = [what, *args]
        sys.modules.pop(what, None)  # as in a fresh interpreter, where -m runs a module not yet imported
        runpy.run_module(what, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *args]
        exec(compile(what, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})


def child(req):
    os.chdir(req["cwd"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    signal.alarm(req["timeout"])
    code = 0
    try:
        run(*req["args"][:2], req["args"][2:])
    except SystemExit as e:  # the interpreter's reading of it
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    # what an interpreter does on its way out that a command can see (threads joined, exit handlers run, output
    # flushed), without tearing down the modules
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(req)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class ForkedCli:
    """`workers` servers started with `env`; `run` may be called from that many threads at once."""

    def __init__(self, workers: int, env: dict[str, str], timeout: int = 300):
        self._timeout = timeout
        self._dir = Path(tempfile.mkdtemp(prefix="kdcc-forked-"))
        self._servers: queue.Queue = queue.Queue()
        self._all = []
        self._ids = itertools.count()
        for _ in range(workers):
            proc = subprocess.Popen([sys.executable, "-c", _SERVER], env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
            self._all.append(proc)
            self._servers.put(proc)

    def run(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
        """`args`: what follows the interpreter (["-m", module, ...] or ["-c", script, ...])."""
        server = self._servers.get()
        try:
            n = next(self._ids)
            out, err = self._dir / f"{n}.out", self._dir / f"{n}.err"
            server.stdin.write(json.dumps({"args": args, "cwd": str(cwd), "out": str(out), "err": str(err),
                                           "timeout": self._timeout}) + "\n")
            server.stdin.flush()
            reply = server.stdout.readline()
            if not reply:
                raise RuntimeError("the forked-CLI server died")
            return subprocess.CompletedProcess([sys.executable, *args], json.loads(reply)["rc"], out.read_text(),
                                               err.read_text())
        finally:
            self._servers.put(server)

    def close(self) -> None:
        for proc in self._all:
            proc.stdin.close()
            proc.wait(timeout=30)
        shutil.rmtree(self._dir, ignore_errors=True)
