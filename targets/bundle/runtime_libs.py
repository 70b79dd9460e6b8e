"""The TVM runtime a bundle ships: shared libraries per architecture, plus tvm-ffi headers.

A compiled policy needs `libtvm_runtime.so` and `libtvm_ffi.so` (and `libtvm_runtime_cuda.so`
for a CUDA library) of the *same* TVM version that built it. For this machine's architecture
they come from the installed wheels. For another one (aarch64, for Orin) they come from
PyPI's manylinux_2_28 wheels of the same versions, fetched once, at setup (`make setup`):

    python -m kdcc.targets.bundle.runtime_libs fetch --arch aarch64

into the cache (`$KDCC_CACHE_DIR/runtime/`, by default ~/.cache/kdcc/runtime/). A compile or
a test never goes to the network: when the cache lacks them, `runtime_libraries` raises a
one-line KdccError with the command above, and the bundle writer asks it before it builds
anything, so a compile without the runtime stops early and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.targets.tvm.toolchain import cache_dir

__all__ = ["RUNTIME_LIBS", "CUDA_LIB", "runtime_versions", "runtime_libraries", "cache_path", "fetch_command",
           "fetch", "ffi_include_dir", "main"]

RUNTIME_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")
CUDA_LIB = "libtvm_runtime_cuda.so"
_WHEEL_PATHS = {"libtvm_runtime.so": "tvm/lib/", "libtvm_runtime_cuda.so": "tvm/lib/", "libtvm_ffi.so": "tvm_ffi/lib/"}
_ARCHES = ("aarch64", "x86_64")


def runtime_versions() -> dict[str, str]:
    return {"apache-tvm": metadata.version("apache-tvm"), "apache-tvm-ffi": metadata.version("apache-tvm-ffi")}


def ffi_include_dir() -> Path:
    """tvm-ffi's C++ headers (and dlpack), which the bundle's C++ wrapper compiles against."""
    import tvm_ffi.libinfo

    return Path(tvm_ffi.libinfo.find_include_path())


def _installed() -> dict[str, Path]:
    import tvm
    import tvm_ffi

    tvm_lib = Path(tvm.__file__).parent / "lib"
    return {"libtvm_runtime.so": tvm_lib / "libtvm_runtime.so", CUDA_LIB: tvm_lib / CUDA_LIB,
            "libtvm_ffi.so": Path(tvm_ffi.__file__).parent / "lib" / "libtvm_ffi.so"}


def cache_path(arch: str) -> Path:
    """The cache directory of `arch`'s runtime, named by the versions it must match."""
    versions = runtime_versions()
    return cache_dir() / "runtime" / f"{arch}-tvm{versions['apache-tvm']}-ffi{versions['apache-tvm-ffi']}"


def fetch_command(arch: str) -> str:
    """The command that puts `arch`'s runtime in the cache (what `make setup` runs)."""
    return f"{sys.executable} -m kdcc.targets.bundle.runtime_libs fetch --arch {arch}"


def runtime_libraries(arch: str, with_cuda: bool = False) -> dict[str, Path]:
    """name -> path of the runtime libraries for `arch`; a one-line KdccError when they are absent.

    Nothing is downloaded here: another architecture's libraries must be in the cache.
    """
    if arch not in _ARCHES:
        raise KdccError(f"no TVM runtime for {arch}: kdcc ships the runtime for {' and '.join(_ARCHES)} only")
    names = RUNTIME_LIBS + ((CUDA_LIB,) if with_cuda else ())
    here = arch == platform.machine()
    found = _installed() if here else {name: cache_path(arch) / name for name in _WHEEL_PATHS}
    missing = [name for name in names if not found[name].is_file()]
    if missing and here:
        raise KdccError(f"TVM runtime for {arch}: the installed apache-tvm wheels lack {', '.join(missing)} "
                        f"(reinstall apache-tvm=={runtime_versions()['apache-tvm']})")
    if missing:
        raise KdccError(f"TVM runtime for {arch} is not fetched ({cache_path(arch)} lacks {', '.join(missing)}): "
                        f"run `{fetch_command(arch)}` once (or `make setup`), then compile again")
    return {name: found[name] for name in names}


def _pip_command(arch: str, dest: str) -> list[str]:
    pins = [f"{name}=={version}" for name, version in runtime_versions().items()]
    return [sys.executable, "-m", "pip", "download", *pins, "--platform", f"manylinux_2_28_{arch}",
            "--only-binary=:all:", "--no-deps", "--quiet", "-d", dest]


def fetch(arch: str) -> Path:
    """Download `arch`'s wheels with pip and cache only the runtime libraries (network).

    The cache directory appears whole or not at all (unpacked beside it, then renamed);
    nothing is done when it is already there.
    """
    cache = cache_path(arch)
    if all((cache / name).is_file() for name in RUNTIME_LIBS):
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kdcc-wheels-") as wheels:
        proc = subprocess.run(_pip_command(arch, wheels), capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise KdccError(f"fetching the TVM runtime for {arch}: pip download failed ({last})")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache.parent))
        try:
            for wheel in Path(wheels).glob("*.whl"):
                with zipfile.ZipFile(wheel) as z:
                    for name, folder in _WHEEL_PATHS.items():
                        if folder + name in z.namelist():
                            (staging / name).write_bytes(z.read(folder + name))
            missing = [name for name in RUNTIME_LIBS if not (staging / name).is_file()]
            if missing:
                raise KdccError(f"fetching the TVM runtime for {arch}: the wheels hold no {', '.join(missing)}")
            shutil.rmtree(cache, ignore_errors=True)  # an incomplete copy from an older kdcc
            staging.rename(cache)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return cache


def main(argv: list[str] | None = None) -> int:
    """`python -m kdcc.targets.bundle.runtime_libs fetch [--arch aarch64]`: the setup-time fetch."""
    parser = argparse.ArgumentParser(prog="python -m kdcc.targets.bundle.runtime_libs",
                                     description="Put the TVM runtime libraries of a device architecture in "
                                                 "kdcc's cache ($KDCC_CACHE_DIR or ~/.cache/kdcc); needs network, "
                                                 "once, at setup. Compiles then take them from the cache.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download the arch's apache-tvm wheels and cache its runtime")
    fetch_parser.add_argument("--arch", choices=_ARCHES, default="aarch64", help="device architecture (default: aarch64)")
    args = parser.parse_args(argv)
    if args.arch == platform.machine():
        print(f"kdcc: the TVM runtime for {args.arch} comes from the installed wheels; nothing to fetch")
        return 0
    try:
        print(fetch(args.arch))
    except KdccError as e:
        print(f"kdcc: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
