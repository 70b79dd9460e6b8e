"""Fuzz the teacher readers: kdcc teacher files, EPyMARL/PyMARL model directories, ONNX teachers."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import strategies as st

from kdcc.inputs.epymarl import load_model_dir
from kdcc.inputs.onnx_teacher import export_onnx_teacher, load_onnx_teacher
from kdcc.inputs.teacher import load_teacher, save_teacher
from kdcc.marl.qmix import build_agent, build_mixer
from tests.conftest import tiny_spec
from tests.epymarl_fixture import run_config, write_model_dir
from tests.fuzz._fuzz import FUZZ, NASTY, check_reader, mutated_bytes, mutated_json

SPEC = tiny_spec(hidden=4, embed=2, hypernet_embed=4)


def _teacher_blob() -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        save_teacher(Path(d) / "t.pt", SPEC, build_agent(SPEC), build_mixer(SPEC), {"trainer": "fuzz"})
        return torch.load(Path(d) / "t.pt", weights_only=True)


BLOB = _teacher_blob()
SEED_BYTES = io.BytesIO()
torch.save(BLOB, SEED_BYTES)
SEED_BYTES = SEED_BYTES.getvalue()

# A tensor in the wrong form: another shape, an empty one, integers, NaN, a scalar.
BAD_TENSORS = st.one_of(
    st.lists(st.integers(0, 5), min_size=0, max_size=3).map(lambda s: torch.zeros(tuple(s))),
    st.sampled_from([torch.zeros(0), torch.ones(3, dtype=torch.int64), torch.full((4, 4), float("nan")),
                     torch.tensor(1.0), torch.zeros(2, 2, dtype=torch.bool)]),
)


def _write(tmp: str, name: str, data: bytes) -> Path:
    path = Path(tmp) / name
    path.write_bytes(data)
    return path


@FUZZ
@given(mutated_bytes(SEED_BYTES))
def test_teacher_file_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        check_reader(lambda: load_teacher(_write(tmp, "t.pt", data)))


@st.composite
def _mutated_blob(draw):
    blob = dict(BLOB)
    what = draw(st.sampled_from(["spec", "tensor", "top"]))
    if what == "spec":
        blob["spec"] = draw(mutated_json(BLOB["spec"]))
    elif what == "tensor":
        part = draw(st.sampled_from(["agent", "mixer"]))
        state = dict(blob[part])
        key = draw(st.sampled_from(sorted(state)))
        state[key] = draw(st.one_of(BAD_TENSORS, NASTY))
        blob[part] = state
    else:
        blob = draw(mutated_json({k: v for k, v in blob.items() if k not in ("agent", "mixer")}))
        if isinstance(blob, dict):
            blob.update(agent=BLOB["agent"], mixer=BLOB["mixer"])
    return blob


@FUZZ
@given(_mutated_blob())
def test_teacher_file_structure(blob):
    buf = io.BytesIO()
    torch.save(blob, buf)
    with tempfile.TemporaryDirectory() as tmp:
        check_reader(lambda: load_teacher(_write(tmp, "t.pt", buf.getvalue())))


def _model_dir(tmp: Path) -> tuple[Path, Path]:
    checkpoint, config, _, _ = write_model_dir(tmp / "results" / "models" / "qmix" / "100", SPEC, "epymarl")
    return checkpoint, config


CONFIG = run_config(SPEC, "epymarl")


@FUZZ
@given(st.sampled_from(["config", "agent.th", "mixer.th"]), st.data())
def test_epymarl_directory(which, data):
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, config = _model_dir(Path(tmp))
        if which == "config":
            config.write_text(json.dumps(data.draw(mutated_json(CONFIG))))
        else:
            path = checkpoint / which
            path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        check_reader(lambda: load_model_dir(checkpoint, config, quiet=True))


def _onnx_dir(tmp: Path) -> Path:
    torch.manual_seed(0)
    from kdcc.inputs.teacher import Teacher

    return export_onnx_teacher(Teacher(SPEC, build_agent(SPEC).eval(), build_mixer(SPEC).eval()), tmp / "onnx")


@FUZZ
@given(st.sampled_from(["spec.json", "agent.onnx", "mixer.onnx"]), st.data())
def test_onnx_teacher(which, data):
    with tempfile.TemporaryDirectory() as tmp:
        d = _onnx_dir(Path(tmp))
        path = d / which
        if which == "spec.json":
            path.write_text(json.dumps(data.draw(mutated_json(json.loads(path.read_text())))))
        else:
            path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        check_reader(lambda: load_onnx_teacher(d))
