"""ONNX teachers: `agent.onnx` + `mixer.onnx` + a spec JSON, run with ONNX Runtime.

    agent.onnx   (inputs [B, input_dim], hidden [B, H]) -> (q [B, A], hidden_out [B, H])
                 a feed-forward agent may leave out the `hidden` input; hidden_out is
                 its post-ReLU layer, what relation distillation compares
    mixer.onnx   (agent_qs [B, n_agents], states [B, state_dim]) -> q_tot [B, 1] (or [B])
    spec.json    {"format": "kdcc-onnx-teacher", "version": 1, "spec": MarlSpec.to_dict(),
                  "provenance": {...}}   (a bare MarlSpec dict is accepted too)

Inputs and outputs are taken by position. Each graph is wrapped as a frozen
`nn.Module` whose forward runs the session on CPU, one thread, so every part
of kdcc that only *runs* the teacher (rollouts, collection, the probe,
DAgger labels, the mixer fit) works unchanged. A graph exported with a fixed
batch size is run in chunks of that size. What ONNX cannot give is torch
weights to prune: `kdcc.inputs.sources.initial_program` starts the compile from a
fresh student instead, which distillation trains.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes, read_json_object
from kdcc.inputs.teacher import Teacher
from kdcc.ir.spec import MarlSpec, check_claimed_sizes
from kdcc.marl.worlds import check_world

__all__ = ["FORMAT", "OnnxModule", "is_onnx_teacher", "onnx_teacher_files", "load_onnx_teacher",
           "export_onnx_teacher"]

FORMAT, VERSION = "kdcc-onnx-teacher", 1
AGENT, MIXER, SPEC = "agent.onnx", "mixer.onnx", "spec.json"


class OnnxModule(nn.Module):
    """An ONNX Runtime session as a frozen module: tensors in, tensors out, no gradients."""

    def __init__(self, path: Path):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types for any unreadable model
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise KdccError(f"{path}: not a loadable ONNX model ({first})") from None
        self.path = path
        self.inputs = self.session.get_inputs()
        self.outputs = [o.name for o in self.session.get_outputs()]
        batch = self.inputs[0].shape[0] if self.inputs[0].shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in self.inputs]
        b, chunk = arrays[0].shape[0], self.fixed_batch
        if chunk is None or chunk == b:
            return self.session.run(None, dict(zip(names, arrays)))
        parts = []
        for start in range(0, b, chunk):
            piece = [a[start:start + chunk] for a in arrays]
            short = chunk - len(piece[0])
            piece = [np.concatenate([p, np.zeros((short, *p.shape[1:]), p.dtype)]) for p in piece]
            parts.append([o[: chunk - short] for o in self.session.run(None, dict(zip(names, piece)))])
        return [np.concatenate(outs) for outs in zip(*parts)]

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                  for t in tensors[: len(self.inputs)]]
        return tuple(torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in self._run(arrays))


class OnnxAgent(OnnxModule):
    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, h = super().forward(inputs, hidden.reshape(inputs.shape[0], -1))[:2]
        return q, h


class OnnxMixer(OnnxModule):
    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        qs = agent_qs.reshape(-1, agent_qs.shape[-1])
        return super().forward(qs, states.reshape(qs.shape[0], -1))[0].reshape(-1, 1)


def _spec_path(path: Path, config: str | Path | None) -> Path:
    if config is not None:
        return Path(config)
    return path if path.is_file() else path / SPEC


def _graph_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def is_onnx_teacher(path: str | Path) -> bool:
    """A directory holding agent.onnx, or a spec .json whose directory does."""
    p = Path(path)
    return (_graph_dir(p) / AGENT).is_file() and (p.is_dir() or p.suffix == ".json")


def onnx_teacher_files(path: str | Path, config: str | Path | None = None) -> list[Path]:
    p = Path(path)
    return [_graph_dir(p) / AGENT, _graph_dir(p) / MIXER, _spec_path(p, config)]


def _read_spec(path: Path) -> tuple[MarlSpec, dict[str, Any]]:
    if not path.is_file():
        raise KdccError(f"{path}: spec file not found (an ONNX teacher needs {SPEC} beside the graphs, or --config)")
    doc = read_json_object(path, "JSON spec")
    if "spec" in doc:
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise KdccError(f"{path}: expected format {FORMAT!r} version {VERSION}")
        raw, provenance = doc["spec"], doc.get("provenance") or {}
        if not isinstance(provenance, dict):
            raise KdccError(f"{path}: 'provenance' must be a JSON object, got {type(provenance).__name__}")
    else:
        raw, provenance = doc, {}
    try:
        spec = MarlSpec.from_dict(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise KdccError(f"{path}: invalid spec ({e})") from None
    try:
        check_world(spec.env.id)
    except KdccError as e:
        raise KdccError(f"{path}: spec names {e}") from None
    return spec, provenance


def _check_graphs(agent: OnnxAgent, mixer: OnnxMixer, spec: MarlSpec) -> None:
    """Run both graphs once on a team-sized batch and check every shape against the spec."""
    n, H = spec.n_agents, spec.agent.hidden_dim
    if not 1 <= len(agent.inputs) <= 2 or len(agent.outputs) < 2:
        raise KdccError(f"{agent.path}: expected inputs (inputs, hidden) and outputs (q, hidden_out), got "
                        f"{len(agent.inputs)} inputs and {len(agent.outputs)} outputs")
    if len(mixer.inputs) != 2:
        raise KdccError(f"{mixer.path}: expected inputs (agent_qs, states), got {len(mixer.inputs)}")
    for module, widths in ((agent, [spec.input_dim, H]), (mixer, [n, spec.state_dim])):
        for inp, want in zip(module.inputs, widths):
            have = inp.shape[-1] if inp.shape else None
            if isinstance(have, int) and have != want:
                raise KdccError(f"{module.path}: input {inp.name!r} has width {have}, the spec implies {want}")
    try:
        q, h = agent(torch.zeros(n, spec.input_dim), torch.zeros(n, H))
        q_tot = mixer(torch.zeros(1, n), torch.zeros(1, spec.state_dim))
    except KdccError:
        raise
    except Exception as e:  # ORT errors on a shape or type the graph does not take
        raise KdccError(f"ONNX teacher does not run on the spec's shapes ({str(e).splitlines()[0][:160]})") from None
    if tuple(q.shape) != (n, spec.n_actions) or tuple(h.shape) != (n, H):
        raise KdccError(f"{agent.path}: outputs have shapes {tuple(q.shape)} and {tuple(h.shape)}, the spec "
                        f"implies {(n, spec.n_actions)} and {(n, H)}")
    if q_tot.numel() != 1:
        raise KdccError(f"{mixer.path}: Q_tot for one state has {q_tot.numel()} values, expected 1")


def load_onnx_teacher(path: str | Path, config: str | Path | None = None) -> Teacher:
    """An ONNX teacher directory (or its spec file) as a Teacher whose modules run ONNX Runtime."""
    p = Path(path)
    spec, provenance = _read_spec(_spec_path(p, config))
    graphs = _graph_dir(p)
    for name in (AGENT, MIXER):
        if not (graphs / name).is_file():
            raise KdccError(f"{graphs}: {name} is missing (an ONNX teacher is {AGENT} + {MIXER} + {SPEC})")
    check_claimed_sizes(spec, sum((graphs / n).stat().st_size for n in (AGENT, MIXER)), str(p))
    agent, mixer = OnnxAgent(graphs / AGENT), OnnxMixer(graphs / MIXER)
    _check_graphs(agent, mixer, spec)
    agent.eval()
    mixer.eval()
    return Teacher(spec, agent, mixer, {**provenance, "source": "onnx"}, str(p))


def export_onnx_teacher(teacher: Teacher, out_dir: str | Path, *, fixed_batch: bool = False) -> Path:
    """Write a torch teacher as an ONNX teacher directory (dynamic batch unless `fixed_batch`)."""
    spec, out = teacher.spec, Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = spec.n_agents
    graphs = ((teacher.agent, AGENT, (torch.zeros(n, spec.input_dim), torch.zeros(n, spec.agent.hidden_dim)),
               ["inputs", "hidden"], ["q", "hidden_out"]),
              (teacher.mixer, MIXER, (torch.zeros(1, n), torch.zeros(1, spec.state_dim)),
               ["agent_qs", "states"], ["q_tot"]))
    for module, name, example, ins, outs in graphs:
        buf = io.BytesIO()
        axes = None if fixed_batch else {k: {0: "batch"} for k in (*ins, *outs)}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript exporter: kdcc has no onnxscript
            torch.onnx.export(module.eval(), example, buf, dynamo=False, opset_version=17, input_names=ins,
                              output_names=outs, dynamic_axes=axes, keep_initializers_as_inputs=False)
        atomic_write_bytes(out / name, buf.getvalue())
    doc = {"format": FORMAT, "version": VERSION, "spec": spec.to_dict(),
           "provenance": {"exported_from": Path(teacher.path).name, **teacher.provenance}}
    atomic_write_bytes(out / SPEC, (json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n").encode())
    return out
