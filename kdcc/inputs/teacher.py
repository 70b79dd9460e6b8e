"""Teacher file format v1: one `torch.save`d dict of tensors and plain values.

    {"format": "kdcc-teacher", "version": 1,
     "spec": MarlSpec.to_dict(), "provenance": {...},
     "agent": RNNAgent.state_dict(), "mixer": QMixer.state_dict()}

A VDN, IQL or actor-critic teacher (`spec.algorithm`) has a mixer without
weights: its "mixer" entry is empty or absent.

It is read only with `torch.load(weights_only=True)`, so a teacher file can
never run code; every problem is reported as one line naming the file.
See docs/teacher-format.md.
"""

from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes
from kdcc.ir.spec import MarlSpec
from kdcc.marl.worlds import check_world
from kdcc.marl.qmix import build_agent, build_mixer

__all__ = ["FORMAT", "VERSION", "Teacher", "load_teacher", "save_teacher", "teacher_from_blob"]

FORMAT = "kdcc-teacher"
VERSION = 1
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, or a legacy pickle stream


@dataclass
class Teacher:
    spec: MarlSpec
    agent: nn.Module
    mixer: nn.Module
    provenance: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"

    def param_count(self) -> int:
        return sum(p.numel() for m in (self.agent, self.mixer) for p in m.parameters())


def _plain(value: Any) -> Any:
    """Coerce to types `weights_only` loading accepts (str subclasses such as TorchVersion are not)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def save_teacher(path: str | Path, spec: MarlSpec, agent: nn.Module, mixer: nn.Module,
                 provenance: dict[str, Any] | None = None) -> None:
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "spec": _plain(spec.to_dict()),
        "provenance": _plain(provenance or {}),
        "agent": {k: v.detach().clone().contiguous() for k, v in agent.state_dict().items()},
        "mixer": {k: v.detach().clone().contiguous() for k, v in mixer.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _fail(path: str, problem: str) -> KdccError:
    return KdccError(f"{path}: {problem}")


def _read_blob(path: Path) -> dict:
    name = str(path)
    if not path.exists():
        raise _fail(name, "no such file")
    if path.is_dir():
        raise _fail(name, "is a directory, not a teacher file (for an EPyMARL model directory pass --config)")
    if path.stat().st_size == 0:
        raise _fail(name, "file is empty")
    with path.open("rb") as f:
        if not f.read(4).startswith(_TORCH_MAGIC):
            raise _fail(name, "not a torch file (neither a zip archive nor a pickle stream)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr; the error below says enough
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types on corrupt input; all mean "unreadable"
        text = str(e).strip()
        if isinstance(e, pickle.UnpicklingError) and ("Unsupported global" in text or "weights_only" in text):
            raise _fail(name, "refused: the file holds Python objects that would run code on load") from None
        first = text.splitlines()[0].split(". ")[0][:160] if text else type(e).__name__
        raise _fail(name, f"not a readable torch file ({first})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise _fail(name, f"not a kdcc teacher file (expected format tag {FORMAT!r})")
    if blob.get("version") != VERSION:
        raise _fail(name, f"unsupported teacher format version {blob.get('version')!r} (this kdcc reads {VERSION})")
    return blob


def _check_state(name: str, what: str, module: nn.Module, state: Any) -> None:
    if not isinstance(state, dict):
        raise _fail(name, f"'{what}' is not a state dict")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise _fail(name, f"{what} state dict does not match the spec (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, ref in expected.items():
        t = state[key]
        if not isinstance(t, torch.Tensor):
            raise _fail(name, f"{what}.{key} is not a tensor")
        if tuple(t.shape) != tuple(ref.shape):
            raise _fail(name, f"{what}.{key} has shape {tuple(t.shape)} but the spec implies {tuple(ref.shape)}")
        if not t.is_floating_point():
            raise _fail(name, f"{what}.{key} has dtype {t.dtype}, expected a floating-point tensor")
        if not bool(torch.isfinite(t).all()):
            raise _fail(name, f"{what}.{key} contains NaN or Inf")


def _shapes_of(name: str, spec: MarlSpec) -> tuple[nn.Module, nn.Module]:
    """The agent and mixer the spec implies, built on torch's meta device: shapes without memory.

    The spec is only a claim (hidden 10^9 in a 2 KB file); building real modules first would allocate
    what it claims. Checked against these, the file's own tensors bound every allocation that follows."""
    try:
        with torch.device("meta"):
            return build_agent(spec), build_mixer(spec)
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:
        raise _fail(name, f"invalid spec ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None


def teacher_from_blob(name: str, blob: dict) -> Teacher:
    try:
        spec = MarlSpec.from_dict(blob["spec"])
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(name, f"invalid spec ({e})") from None
    try:
        check_world(spec.env.id)
    except KdccError as e:
        raise _fail(name, f"spec names {e}") from None
    shapes = _shapes_of(name, spec)
    _check_state(name, "agent", shapes[0], blob.get("agent"))
    mixer_state = blob.get("mixer", {} if spec.sums else None)
    _check_state(name, "mixer", shapes[1], mixer_state)
    torch.manual_seed(0)  # only now that the file's tensors fill them are the modules allocated
    agent, mixer = build_agent(spec), build_mixer(spec)
    agent.load_state_dict({k: v.float() for k, v in blob["agent"].items()})
    mixer.load_state_dict({k: v.float() for k, v in mixer_state.items()})
    agent.eval()
    mixer.eval()
    for p in (*agent.parameters(), *mixer.parameters()):
        p.requires_grad_(False)
    provenance = blob.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise _fail(name, f"'provenance' must be a dict, got {type(provenance).__name__}")
    return Teacher(spec, agent, mixer, dict(provenance), name)


def load_teacher(path: str | Path) -> Teacher:
    """Load and validate a v1 teacher file; raises KdccError naming the file."""
    path = Path(path)
    return teacher_from_blob(str(path), _read_blob(path))


