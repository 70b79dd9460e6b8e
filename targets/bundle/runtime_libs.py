"""The TVM runtime a bundle ships: shared libraries per architecture, plus tvm-ffi headers.

A compiled policy needs `libtvm_runtime.so` and `libtvm_ffi.so` (and `libtvm_runtime_cuda.so`
for a CUDA library) of the *same* TVM version that built it. For this machine's architecture
they come from the installed wheels. For aarch64 they come from PyPI's manylinux aarch64
wheels of the same versions, fetched once with pip and cached under ~/.cache/kdcc/runtime.
Without network (or with KDCC_OFFLINE=1) the bundle gets exact instructions instead, and
its CMake package refuses to configure until the libraries are in place.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from kdcc.targets.tvm.toolchain import CACHE_DIR

__all__ = ["RUNTIME_LIBS", "CUDA_LIB", "runtime_versions", "runtime_libraries", "fetch_instructions",
           "ffi_include_dir"]

RUNTIME_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")
CUDA_LIB = "libtvm_runtime_cuda.so"
_WHEEL_PATHS = {"libtvm_runtime.so": "tvm/lib/", "libtvm_runtime_cuda.so": "tvm/lib/", "libtvm_ffi.so": "tvm_ffi/lib/"}


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


def _pip_command(arch: str, dest: str) -> list[str]:
    pins = [f"{name}=={version}" for name, version in runtime_versions().items()]
    return [sys.executable, "-m", "pip", "download", *pins, "--platform", f"manylinux_2_28_{arch}",
            "--only-binary=:all:", "--no-deps", "--quiet", "-d", dest]


def fetch_instructions(arch: str) -> str:
    """What a person runs to put the runtime in place by hand (used when fetching failed)."""
    cmd = " ".join(_pip_command(arch, "wheels")[2:]).replace("--quiet ", "")
    return (f"The TVM runtime for {arch} is missing from this bundle (it could not be fetched).\n"
            f"Fetch the wheels and copy the libraries into runtime/{arch}/:\n\n"
            f"    python -m {cmd}\n"
            f"    cd wheels && for w in *.whl; do python -m zipfile -e $w x; done\n"
            f"    cp x/tvm/lib/libtvm_runtime.so x/tvm/lib/{CUDA_LIB} x/tvm_ffi/lib/libtvm_ffi.so ../runtime/{arch}/\n\n"
            f"CMake checks for runtime/{arch}/libtvm_runtime.so and libtvm_ffi.so before it builds.\n")


def _fetch(arch: str, cache: Path) -> bool:
    """Download the arch's wheels with pip and keep only the runtime libraries; False if offline."""
    if os.environ.get("KDCC_OFFLINE") == "1":
        return False
    with tempfile.TemporaryDirectory(prefix="kdcc-wheels-") as tmp:
        proc = subprocess.run(_pip_command(arch, tmp), capture_output=True, text=True)
        if proc.returncode != 0:
            return False
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache.parent))
        try:
            for wheel in Path(tmp).glob("*.whl"):
                with zipfile.ZipFile(wheel) as z:
                    for name, folder in _WHEEL_PATHS.items():
                        if folder + name in z.namelist():
                            (staging / name).write_bytes(z.read(folder + name))
            if not all((staging / name).is_file() for name in RUNTIME_LIBS):
                return False
            staging.rename(cache)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return True


def runtime_libraries(arch: str, with_cuda: bool = False) -> dict[str, Path] | None:
    """name -> path of the runtime libraries for `arch`, or None when they cannot be had."""
    names = RUNTIME_LIBS + ((CUDA_LIB,) if with_cuda else ())
    if arch == platform.machine():
        found = _installed()
    else:
        versions = runtime_versions()
        cache = CACHE_DIR / "runtime" / f"{arch}-tvm{versions['apache-tvm']}-ffi{versions['apache-tvm-ffi']}"
        cache.parent.mkdir(parents=True, exist_ok=True)
        if not cache.is_dir() and not _fetch(arch, cache):
            return None
        found = {name: cache / name for name in _WHEEL_PATHS}
    if not all(found[name].is_file() for name in names):
        return None
    return {name: found[name] for name in names}
