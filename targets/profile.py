"""Target profiles: hardware numbers as data (TOML), one file per target.

A profile has one or more devices (Orin has an ARM CPU and an Ampere GPU).
Each device carries what the cost model needs (peak throughput per precision,
memory bandwidth, per-call and per-kernel overheads, energy per FLOP and per
DRAM byte, the width pruned layers are rounded to) and what the TVM backend
needs (its TVM target as a JSON dict, host target, cross toolchain triple).
Users add a target by passing their own TOML file.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kdcc.core.errors import KdccError

__all__ = ["DeviceProfile", "TargetProfile", "load_profile", "parse_profile", "known_profiles"]

_PROFILE_DIR = "profiles"


@dataclass(frozen=True)
class DeviceProfile:
    name: str  # "cpu" | "gpu" | a user's name
    kind: str  # "cpu" | "gpu"
    peak_gflops: dict[str, float]  # per precision: fp32, fp16, int8
    mem_bandwidth_gbs: float
    call_overhead_us: float  # fixed cost of one team-step call (runtime dispatch, sync)
    kernel_overhead_us: float  # per kernel launch / per fused op dispatch
    energy_pj_per_flop: float
    energy_pj_per_byte: float  # DRAM traffic
    preferred_multiple: int  # SIMD lanes (CPU) / warp or tile width (GPU) for pruned widths
    tvm_target: dict[str, Any]
    tvm_host: dict[str, Any] | None = None
    cross_triple: str | None = None  # e.g. "aarch64-linux-gnu" when the library is cross-built
    static_power_w: float = 0.0
    # the VM-free library's overheads (CPU devices; kdcc.targets.cost_model prices what runs): None = the VM's
    direct_call_overhead_us: float | None = None
    direct_kernel_overhead_us: float | None = None


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    devices: tuple[DeviceProfile, ...]
    cuda_version: str | None = None  # CUDA of the JetPack the target runs (GPU images must load there)
    jetpack: str | None = None
    source: str = ""

    def device(self, name: str | None = None) -> DeviceProfile:
        if name is None:
            return self.devices[0]
        for d in self.devices:
            if d.name == name:
                return d
        raise KdccError(f"target {self.name!r} has no device {name!r} (has: {', '.join(d.name for d in self.devices)})")


def known_profiles() -> list[str]:
    root = resources.files("kdcc.targets") / _PROFILE_DIR
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def _need(table: dict, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise KdccError(f"{where}: missing field '{key}'")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise KdccError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def _positive(table: dict, key: str, where: str) -> float:
    value = float(_need(table, key, where, (int, float)))
    if not value > 0:
        raise KdccError(f"{where}: field '{key}' must be positive, got {value}")
    return value


def _positive_int(table: dict, key: str, where: str) -> int:
    value = _need(table, key, where, int)
    if value < 1:
        raise KdccError(f"{where}: field '{key}' must be a positive integer, got {value}")
    return value


def _non_negative(table: dict, key: str, where: str) -> float:
    if key not in table:
        return 0.0
    value = float(_need(table, key, where, (int, float)))
    if value < 0:
        raise KdccError(f"{where}: field '{key}' must not be negative, got {value}")
    return value


def _tvm_target(value: object, key: str, where: str) -> dict:
    """A TVM target as a TOML table or a JSON object in a string (how `kdcc calibrate` writes it)."""
    try:
        target = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise KdccError(f"{where}: field '{key}' is not a JSON object or a TOML table") from None
    if not isinstance(target, dict):
        raise KdccError(f"{where}: field '{key}' is not a JSON object or a TOML table")
    return dict(target)


def _device(d: dict, where: str) -> DeviceProfile:
    if not isinstance(d, dict):
        raise KdccError(f"{where}: every [[device]] is a table, got {type(d).__name__}")
    name = _need(d, "name", where, str)
    where = f"{where} [device {name}]"
    kind = _need(d, "kind", where, str)
    if kind not in ("cpu", "gpu"):
        raise KdccError(f"{where}: kind must be 'cpu' or 'gpu', got {kind!r}")
    peaks = _need(d, "peak_gflops", where, dict)
    if "fp32" not in peaks:
        raise KdccError(f"{where}: peak_gflops needs an fp32 entry")
    for k in peaks:
        _positive(peaks, k, f"{where} peak_gflops")
    target = _need(d, "tvm_target", where, (dict, str))
    host = d.get("tvm_host")
    return DeviceProfile(
        name=name,
        kind=kind,
        peak_gflops={k: float(v) for k, v in peaks.items()},
        mem_bandwidth_gbs=_positive(d, "mem_bandwidth_gbs", where),
        call_overhead_us=_positive(d, "call_overhead_us", where),
        kernel_overhead_us=_positive(d, "kernel_overhead_us", where),
        energy_pj_per_flop=_positive(d, "energy_pj_per_flop", where),
        energy_pj_per_byte=_positive(d, "energy_pj_per_byte", where),
        preferred_multiple=_positive_int(d, "preferred_multiple", where),
        tvm_target=_tvm_target(target, "tvm_target", where),
        tvm_host=_tvm_target(host, "tvm_host", where) if host else None,
        cross_triple=_need(d, "cross_triple", where, str) if "cross_triple" in d else None,
        static_power_w=_non_negative(d, "static_power_w", where),
        direct_call_overhead_us=_non_negative(d, "direct_call_overhead_us", where)
        if "direct_call_overhead_us" in d else None,
        direct_kernel_overhead_us=_non_negative(d, "direct_kernel_overhead_us", where)
        if "direct_kernel_overhead_us" in d else None,
    )


def parse_profile(text: str, where: str) -> TargetProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise KdccError(f"{where}: malformed TOML ({e})") from None
    name = _need(data, "name", where, str)
    devices = _need(data, "device", where, list)
    if not devices:
        raise KdccError(f"{where}: needs at least one [[device]]")
    return TargetProfile(
        name=name,
        description=str(data.get("description", "")),
        devices=tuple(_device(d, where) for d in devices),
        cuda_version=data.get("cuda_version"),
        jetpack=data.get("jetpack"),
        source=where,
    )


def load_profile(name_or_path: str) -> TargetProfile:
    """A shipped profile by name (`orin`, `host`, ...) or a user's TOML file by path."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.is_file():
            raise KdccError(f"{name_or_path}: target profile not found")
        return parse_profile(path.read_text(), str(path))
    if name_or_path not in known_profiles():
        raise KdccError(f"unknown target {name_or_path!r} (known: {', '.join(known_profiles())}; or a path to a .toml profile)")
    text = (resources.files("kdcc.targets") / _PROFILE_DIR / f"{name_or_path}.toml").read_text()
    return parse_profile(text, f"target {name_or_path}")
