"""The aarch64 TVM runtime comes from the setup-time cache: a compile never fetches it.

Without it (the cache pointed at an empty directory through KDCC_CACHE_DIR, and no network),
a compile for orin stops before it builds anything, with one line naming the fetch command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from kdcc.core.errors import KdccError
from kdcc.targets.bundle import runtime_libs
from kdcc.targets.bundle.writer import write_bundle
from kdcc.targets.profile import load_profile
from tests.conftest import FAST, REPO, make_tiny_teacher
from tests.targets._team import tiny_team


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty kdcc cache, and no way out: pip, sockets and subprocesses all fail if tried."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("KDCC_CACHE_DIR", str(cache))

    def no_network(*args, **kwargs):
        raise AssertionError(f"tried to reach the network: {args!r}")

    monkeypatch.setattr(runtime_libs.subprocess, "run", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return cache


def test_cache_dir_follows_the_environment(empty_cache):
    assert runtime_libs.cache_path("aarch64").parent == empty_cache / "runtime"


def test_a_missing_runtime_names_the_fetch_command(empty_cache):
    with pytest.raises(KdccError) as err:
        runtime_libs.runtime_libraries("aarch64")
    message = str(err.value)
    assert "\n" not in message
    assert f"`{sys.executable} -m kdcc.targets.bundle.runtime_libs fetch --arch aarch64`" in message
    assert str(runtime_libs.cache_path("aarch64")) in message


def test_a_cached_runtime_is_used_as_it_is(empty_cache):
    cache = runtime_libs.cache_path("aarch64")
    cache.mkdir(parents=True)
    for name in (*runtime_libs.RUNTIME_LIBS, runtime_libs.CUDA_LIB):
        (cache / name).write_bytes(b"\x7fELF " + name.encode())
    found = runtime_libs.runtime_libraries("aarch64", with_cuda=True)
    assert found == {name: cache / name for name in (*runtime_libs.RUNTIME_LIBS, runtime_libs.CUDA_LIB)}
    assert runtime_libs.fetch("aarch64") == cache  # already there: pip is not run


def test_orin_bundle_without_the_runtime_stops_before_building(empty_cache, tmp_path):
    team = tiny_team()
    out = tmp_path / "out" / "bundle"
    with pytest.raises(KdccError, match=r"runtime_libs fetch --arch aarch64") as err:
        write_bundle(team, team.spec, load_profile("orin"), out)
    assert "\n" not in str(err.value)
    assert not out.exists() and not (tmp_path / "out").exists()  # nothing written, not even the work dir


def test_the_fetch_command_has_nothing_to_do_for_this_machine(capsys):
    import platform

    assert runtime_libs.main(["fetch", "--arch", platform.machine()]) == 0
    assert "installed wheels" in capsys.readouterr().out


@pytest.mark.slow
def test_compile_for_orin_without_the_runtime_is_one_line_and_writes_nothing(tmp_path):
    """The real CLI, offline (proxies to a closed port, pip told not to look), cache empty."""
    teacher = make_tiny_teacher(tmp_path / "teacher.pt")
    (tmp_path / "cache").mkdir()
    env = {**os.environ, "KDCC_CACHE_DIR": str(tmp_path / "cache"), "PIP_NO_INDEX": "1",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    opts = [a for k, v in FAST.items() for a in ("--opt", f"{k}={v}")]
    run = subprocess.run([sys.executable, "-m", "kdcc", "compile", str(teacher), "--target", "orin",
                          "-o", str(tmp_path / "build"), "--budget-flops", "2x", "--keep", "off", "-q", *opts], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr[-2000:]
    assert "-m kdcc.targets.bundle.runtime_libs fetch --arch aarch64" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "teacher.pt"]
    assert list((tmp_path / "cache").iterdir()) == []
