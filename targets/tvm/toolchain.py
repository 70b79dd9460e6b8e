"""The tools around TVM: the aarch64 linker, nvcc, and CUDA images a device can load.

Linker. Host libraries link with the system `g++` (TVM's default). aarch64 libraries
link with the pinned pip package `ziglang` (`zig cc -target aarch64-linux-gnu.2.28`: glibc
2.28 like the manylinux_2_28 TVM runtime wheel), so a plain `pip install` is enough; Debian's
`aarch64-linux-gnu-gcc` is the fallback. TVM's objects need no C++ runtime, so `cc` is used.

CUDA. TVM 0.27 keeps CUDA kernels as *source* in the library and compiles them when the
library is loaded, through a Python callback — which a firmware process does not have. So
the CUDA source is compiled here with nvcc, and the serialized CUDA module inside the
library (`__tvm_ffi__library_bin`) is rewritten to carry the image:

    [u64 n]"cuda"[u64 payload]  payload = [u64 n]fmt  fmap  [u64 n]data
    fmt "cuda", data = CUDA source   →   fmt "ptx"|"cubin", data = image

A cubin from a CUDA newer than the device's (JetPack) driver fails with
CUDA_ERROR_INVALID_IMAGE, and PTX with a newer ISA version is refused too. So when the
local nvcc is newer than the profile's `cuda_version`, the image is PTX whose `.version`
is lowered to that CUDA's ISA (TVM's kernels use no newer PTX features) and the driver
JIT-compiles it; otherwise it is a cubin for the exact arch.
"""

from __future__ import annotations

import platform
import re
import shutil
import struct
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.core.fileio import CACHE_ENV, cache_dir

__all__ = ["linker_for", "c_compiler", "nvcc_version", "gpu_image_kind", "cuda_compile_callback", "pack_cuda_imports", "CACHE_ENV",
           "cache_dir"]

ZIG_TRIPLE = "aarch64-linux-gnu.2.28"

# CUDA release -> PTX ISA version it introduced (NVIDIA's PTX ISA release notes).
PTX_ISA = {(11, 4): "7.4", (11, 8): "7.8", (12, 0): "8.0", (12, 1): "8.1", (12, 2): "8.2",
           (12, 3): "8.3", (12, 4): "8.4", (12, 5): "8.5", (12, 6): "8.5", (12, 8): "8.7",
           (12, 9): "8.8", (13, 0): "9.0"}


def _zig_wrapper() -> Path:
    """A compiler-driver script TVM's `cross_compiler` can call like gcc."""
    path = cache_dir() / "toolchain" / "aarch64-zig-cc"
    text = f'#!/bin/sh\nexec "{sys.executable}" -m ziglang cc -target {ZIG_TRIPLE} "$@"\n'
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    return path


def linker_for(arch: str, where: str):
    """(description, fcompile for export_library or None for TVM's default) for `arch`."""
    from tvm.support import cc

    if arch == platform.machine():
        return "g++ (host)", None
    description, command = c_compiler(arch, where)
    return description, cc.cross_compiler(command[0])


def c_compiler(arch: str, where: str) -> tuple[str, list[str]]:
    """(description, command) of a C compiler driver that builds and links for `arch`: the system
    `cc` here; for aarch64 the same zig wrapper (or Debian cross gcc) that links the VM libraries."""
    if arch == platform.machine():
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise KdccError(f"{where}: no C compiler (apt-get install gcc)")
        return "cc (host)", [cc]
    if arch != "aarch64":
        raise KdccError(f"{where}: no cross compiler known for {arch} (kdcc cross-builds aarch64 only)")
    try:
        import ziglang  # noqa: F401  (only its presence matters: the wrapper runs `-m ziglang`)
    except ImportError:
        gcc = shutil.which("aarch64-linux-gnu-gcc")
        if gcc is None:
            raise KdccError(f"{where}: no aarch64 compiler: pip install ziglang, "
                            "or apt-get install gcc-aarch64-linux-gnu") from None
        return "aarch64-linux-gnu-gcc", [gcc]
    return f"zig cc -target {ZIG_TRIPLE}", [str(_zig_wrapper())]


def nvcc_version(where: str) -> tuple[int, int]:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise KdccError(f"{where}: a CUDA device needs nvcc on PATH (install the CUDA toolkit)")
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"release (\d+)\.(\d+)", out)
    if match is None:
        raise KdccError(f"{where}: cannot read the version of {nvcc}")
    return int(match[1]), int(match[2])


def gpu_image_kind(nvcc: tuple[int, int], device_cuda: str | None, where: str) -> dict[str, str]:
    """Which image the device can load: PTX (with the ISA to declare) or a cubin."""
    record = {"nvcc": f"{nvcc[0]}.{nvcc[1]}", "device_cuda": device_cuda or "unknown"}
    if device_cuda is None:
        return {**record, "image": "ptx", "ptx_isa": PTX_ISA.get(nvcc, ""),
                "why": "the profile names no cuda_version; PTX is the most portable image"}
    try:
        want = tuple(int(p) for p in device_cuda.split(".")[:2])
    except ValueError:
        raise KdccError(f"{where}: cuda_version {device_cuda!r} is not MAJOR.MINOR") from None
    if nvcc <= want:
        return {**record, "image": "cubin", "why": "local nvcc is not newer than the device's CUDA"}
    isa = max((v for k, v in PTX_ISA.items() if k <= want), default=None, key=lambda v: tuple(map(int, v.split("."))))
    if isa is None:
        raise KdccError(f"{where}: cuda_version {device_cuda} is older than any CUDA kdcc supports (11.4)")
    return {**record, "image": "ptx", "ptx_isa": isa,
            "why": f"local nvcc {record['nvcc']} is newer than the device's CUDA {device_cuda}"}


def _compile_cuda(source: str, arch: str, gpu: dict[str, str], workdir: Path) -> bytes:
    """nvcc the kernels to the image `gpu` asks for; no fast-math, so results match the CPU's."""
    sm = arch.removeprefix("sm_")
    cu, out = workdir / "kernels.cu", workdir / f"kernels.{gpu['image']}"
    cu.write_text(source)
    flag = ["--ptx", f"-arch=compute_{sm}"] if gpu["image"] == "ptx" else ["--cubin", f"-arch=sm_{sm}"]
    proc = subprocess.run(["nvcc", *flag, "-O3", "-w", "-o", out.name, cu.name], cwd=workdir,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise KdccError(f"nvcc failed on TVM's CUDA kernels for {arch}: {proc.stderr.strip().splitlines()[-1:]}")
    image = out.read_bytes()
    if gpu["image"] == "ptx" and gpu.get("ptx_isa"):
        image = re.sub(rb"^\.version \d+\.\d+$", b".version " + gpu["ptx_isa"].encode(), image,
                       count=1, flags=re.M)
    return image


def _u64(blob: bytes, at: int) -> int:
    return struct.unpack_from("<Q", blob, at)[0]


def _swap_cuda_payloads(blob: bytes, images: dict[bytes, bytes], fmt: str) -> bytes:
    """Give every CUDA module still holding source (fmt "cuda") its image; fix both lengths.

    Modules TVM already compiled (when a CUDA runtime is present, through our callback)
    are left as they are.
    """
    key = struct.pack("<Q", 4) + b"cuda"
    pos, found = 0, 0
    while (start := blob.find(key, pos)) >= 0:
        pos = start + 1
        payload_at = start + len(key) + 8
        fmt_len = _u64(blob, payload_at) if payload_at + 8 <= len(blob) else 0
        if not 0 < fmt_len < 16:
            continue
        current = blob[payload_at + 8:payload_at + 8 + fmt_len]
        if current in (b"ptx", b"cubin", b"fatbin"):
            found += 1
            continue
        end = payload_at + _u64(blob, start + len(key))
        source = next((s for s in images if blob[end - len(s):end] == s and _u64(blob, end - len(s) - 8) == len(s)), None)
        if current != b"cuda" or source is None:
            continue
        fmap = blob[payload_at + 8 + fmt_len:end - len(source) - 8]
        image = images[source]
        payload = struct.pack("<Q", len(fmt)) + fmt.encode() + fmap + struct.pack("<Q", len(image)) + image
        blob = blob[:start + len(key)] + struct.pack("<Q", len(payload)) + payload + blob[end:]
        blob = struct.pack("<Q", len(blob) - 8) + blob[8:]
        found += 1
    if found == 0:
        raise KdccError("toolchain: unexpected TVM library layout (no CUDA module found); "
                        "kdcc supports apache-tvm 0.27")
    return blob


@contextmanager
def cuda_compile_callback(gpu: dict[str, str], arch: str, workdir: Path):
    """While building: TVM's CUDA compile hook makes our image (used when a CUDA runtime is loaded)."""
    import tvm_ffi

    name = "tvm_callback_cuda_compile"
    previous = tvm_ffi.get_global_func(name, allow_missing=True)

    def compile_hook(code, *_):
        workdir.mkdir(parents=True, exist_ok=True)
        return bytearray(_compile_cuda(code, arch, gpu, workdir))

    tvm_ffi.register_global_func(name, compile_hook, override=True)
    try:
        yield
    finally:
        if previous is not None:
            tvm_ffi.register_global_func(name, previous, override=True)


def pack_cuda_imports(gpu: dict[str, str], arch: str):
    """An `fpack_imports` hook for export_library that embeds compiled CUDA images."""
    import tvm_ffi

    def cuda_modules(mod):
        if mod.kind == "cuda":
            yield mod
        for imported in mod.imports:
            yield from cuda_modules(imported)

    def fpack(mod, is_system_lib: bool, prefix: str, workspace_dir: str) -> str:
        blob = bytes(tvm_ffi.get_global_func("runtime.ModulePackImportsToTensor")(mod).numpy().tobytes())
        images = {}
        for cuda in cuda_modules(mod):
            source = cuda.inspect_source("cuda").encode()
            if source and source in blob:
                images[source] = _compile_cuda(source.decode(), arch, gpu, Path(workspace_dir))
        blob = _swap_cuda_payloads(blob, images, gpu["image"])
        path = Path(workspace_dir) / "devc.c"
        rows = (",".join(str(b) for b in blob[i:i + 32]) for i in range(0, len(blob), 32))
        name = f"{prefix}__tvm_ffi__library_bin"
        path.write_text('#ifdef __cplusplus\nextern "C" {\n#endif\n'
                        f"extern const unsigned char {name}[];\n"
                        f"const unsigned char {name}[{len(blob)}] = {{\n" + ",\n".join(rows) + "\n};\n"
                        "#ifdef __cplusplus\n}\n#endif\n")
        return str(path)

    return fpack
