"""CPU numerics pinned so that training gives the same bits on every x86-64 CPU.

torch picks its CPU kernels by the vector extensions it finds (ATen's dispatch: scalar
`default`, `avx2`, `avx512`) and its BLAS (MKL) picks a code path by CPU vendor and
level. Both change the order of float sums, so the same Adam run ends in different
weights on another CPU, and a trained student, its bundle, the `--keep` choice and the
golden records moved with the machine. kdcc therefore pins, before torch runs its first
operation (kdcc/__init__.py calls `pin_cpu_numerics`):

    ATEN_CPU_CAPABILITY=avx2      ATen's AVX2 kernels, the same code on every CPU with AVX2 and
                                  FMA (Haswell, Zen and later: every x86-64 server since 2013),
                                  whether the CPU has AVX-512 or not; `default` (scalar) on one without
    MKL_CBWR=COMPATIBLE           MKL's conditional numerical reproducibility on its SSE2 branch, the
                                  one branch MKL keeps identical on Intel and non-Intel CPUs (its AVX2
                                  branch falls back to per-CPU dispatch on AMD)

and, for the compile, `torch.use_deterministic_algorithms(True)` beside one thread and
the seed (`deterministic_torch`). Measured on a 2-core AMD EPYC (AVX-512), the example
teacher's `--keep off --no-build` compile: 51–53 s unpinned, 62 s pinned as above, 72–78 s
with ATen's scalar kernels instead of AVX2 (README "Reproducible on every machine").

What the pin cannot reach: glibc chooses its `exp`/`log` by CPU feature (FMA or not),
so bit-identity holds across CPUs that have AVX2 and FMA, and not across architectures
(an aarch64 host runs other code); a CPU without AVX2 runs the scalar kernels, recorded.
Regression checks therefore compare floats within a tolerance as well
(kdcc/reports/record_compare.py).

`KDCC_NUMERICS=native` leaves the CPU's own kernels (faster on big networks, not
reproducible across CPUs); the mode in force is recorded in every record and bundle.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["MODE_ENV", "PINNED", "pinned_level", "mode", "pin_cpu_numerics", "numerics_provenance", "pin_problem",
           "deterministic_torch"]

MODE_ENV = "KDCC_NUMERICS"
_MODES = ("reproducible", "native")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def pinned_level() -> str:
    """The ATen kernel level kdcc pins: AVX2 where the CPU has AVX2 and FMA, else the scalar one."""
    return "avx2" if {"avx2", "fma"} <= _cpu_flags() else "default"


PINNED = {"ATEN_CPU_CAPABILITY": pinned_level(), "MKL_CBWR": "COMPATIBLE"}


def mode() -> str:
    """`reproducible` (the default) or `native`; anything else is read as the default."""
    value = os.environ.get(MODE_ENV, "reproducible").strip().lower()
    return value if value in _MODES else "reproducible"


def pin_cpu_numerics() -> None:
    """Set the pinned environment, overriding what the shell set: it takes effect only if torch has
    not run an operation yet (ATen and MKL read it once, at their first use)."""
    if mode() == "reproducible":
        os.environ.update(PINNED)


def _aten_capability() -> str:
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def pin_problem() -> str | None:
    """Why the pin is not in force in this process although the mode asks for it, or None."""
    if mode() != "reproducible":
        return None
    level = _aten_capability()
    if level != PINNED["ATEN_CPU_CAPABILITY"].upper():
        return (f"torch's CPU kernels were already in use at {level} before kdcc was imported, so results "
                f"match only CPUs with that level; import kdcc before running torch, or set "
                f"ATEN_CPU_CAPABILITY={PINNED['ATEN_CPU_CAPABILITY']} and MKL_CBWR=COMPATIBLE")
    return None


def numerics_provenance() -> dict[str, Any]:
    """What decided the bits of this process's float results (recorded; compared as a note)."""
    import torch

    return {"mode": mode(), "aten_cpu_capability": _aten_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR", "(unset)"),
            "blas": "mkl" if torch.backends.mkl.is_available() else "other",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


@contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """One torch thread, deterministic algorithms and a fixed seed for a compile, restored after.

    Float sums also depend on the thread count: one thread gives the same bytes on any machine,
    and for graphs this small it is the fastest."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
