"""A file that claims far more than it holds is refused before anything of that size is allocated.

Each case would have cost gigabytes (or the OOM killer) before its check: a teacher spec claiming a
hidden size of 10^6 over 4-unit tensors, an .npy header claiming 4 GB in a few bytes, an ONNX spec or a
bundle's profile.json claiming a team larger than its model, an EPyMARL config claiming 10^9 agents."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import torch

from kdcc.core.errors import KdccError
from kdcc.inputs.dataset import load_dataset
from kdcc.inputs.epymarl import load_model_dir
from kdcc.inputs.onnx_teacher import load_onnx_teacher
from kdcc.inputs.teacher import load_teacher
from kdcc.targets.bundle.policy import open_bundle_policy
from tests.fuzz.test_fuzz_bundle import PROFILE, _bundle
from tests.fuzz.test_fuzz_files import META, _arrays, _npz
from tests.fuzz.test_fuzz_teacher import BLOB, _model_dir, _onnx_dir

HUGE = 10**6


def test_teacher_spec_claiming_a_huge_hidden_size(tmp_path):
    blob = {**BLOB, "spec": {**BLOB["spec"], "agent": {"kind": "rnn", "hidden_dim": HUGE}}}
    torch.save(blob, tmp_path / "t.pt")
    with pytest.raises(KdccError, match="shape"):
        load_teacher(tmp_path / "t.pt")


def test_dataset_header_claiming_a_huge_array(tmp_path):
    data = bytearray(_npz(_arrays(), META))
    header = b"'shape': (3, 3, 18)"
    at = data.index(header)
    data[at:at + len(header)] = b"'shape': (9999999999,)".ljust(len(header))[:len(header)]
    (tmp_path / "d.npz").write_bytes(bytes(data))
    with pytest.raises(KdccError, match="declares|readable"):
        load_dataset(tmp_path / "d.npz")


def test_zip_entry_claiming_more_than_the_file(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("obs.npy", b"\0" * 4_000_000)  # compresses ~1000:1: fine
    (tmp_path / "d.npz").write_bytes(buf.getvalue())
    with pytest.raises(KdccError):  # a valid but foreign archive: refused for its content, not its size
        load_dataset(tmp_path / "d.npz")
    data = bytearray(buf.getvalue())
    central = data.rindex(b"PK\x01\x02")
    data[central + 24:central + 28] = (2**31).to_bytes(4, "little")  # uncompressed size: 2 GB
    (tmp_path / "d.npz").write_bytes(bytes(data))
    with pytest.raises(KdccError, match="more than the file holds"):
        load_dataset(tmp_path / "d.npz")


def test_onnx_spec_claiming_a_huge_team(tmp_path):
    d = _onnx_dir(tmp_path)
    doc = json.loads((d / "spec.json").read_text())
    doc["spec"]["agent"]["hidden_dim"] = HUGE * 100
    (d / "spec.json").write_text(json.dumps(doc))
    with pytest.raises(KdccError, match="claims"):
        load_onnx_teacher(d)


def test_bundle_profile_claiming_a_huge_team(tmp_path):
    profile = json.loads(json.dumps(PROFILE))
    profile["spec"]["agent"]["hidden_dim"] = HUGE * 100
    root = _bundle(tmp_path, profile)
    with pytest.raises(KdccError, match="claims"):
        open_bundle_policy(root, runner="onnx")


def test_epymarl_config_claiming_a_huge_team(tmp_path):
    checkpoint, config = _model_dir(tmp_path)
    cfg = json.loads(config.read_text())
    cfg["env_args"]["N"] = 10**9
    config.write_text(json.dumps(cfg))
    with pytest.raises(KdccError, match="env_args.N"):
        load_model_dir(checkpoint, config, quiet=True)
