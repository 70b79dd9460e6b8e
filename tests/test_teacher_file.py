"""Teacher format v1: round trip, validation, and refusal to run code."""

import os
import pickle

import pytest
import torch

from kdcc.core.errors import KdccError
from kdcc.inputs.teacher import load_teacher
from tests.conftest import make_tiny_teacher, tiny_spec


def test_round_trip_keeps_weights_and_spec(tmp_path):
    path = make_tiny_teacher(tmp_path / "t.pt", seed=3)
    t = load_teacher(path)
    assert t.spec == tiny_spec()
    torch.manual_seed(3)
    from kdcc.marl.qmix import build_agent
    ref = build_agent(tiny_spec())
    for k, v in ref.state_dict().items():
        assert torch.equal(t.agent.state_dict()[k], v)
    assert t.provenance["seed"] == 3
    assert not any(p.requires_grad for p in t.agent.parameters())


def _blob(path):
    return torch.load(path, weights_only=True)


def _save(path, blob):
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.update(format="other"), "not a kdcc teacher file"),
    (lambda b: b.update(version=2), "unsupported teacher format version 2"),
    (lambda b: b["agent"].update({"fc1.weight": torch.zeros(7, 26)}), "agent.fc1.weight has shape (7, 26)"),
    (lambda b: b["mixer"].pop("V.2.bias"), "missing ['V.2.bias']"),
    (lambda b: b["agent"]["fc2.bias"].fill_(float("nan")), "agent.fc2.bias contains NaN or Inf"),
    (lambda b: b["spec"]["env"].update(id="simple_tag_v3"), "unknown environment 'simple_tag_v3'"),
    (lambda b: b["spec"].update(n_agents=0), "invalid spec"),
])
def test_bad_contents_are_named(tmp_path, tiny_teacher, mutate, message):
    blob = _blob(tiny_teacher)
    mutate(blob)
    bad = _save(tmp_path / "bad.pt", blob)
    with pytest.raises(KdccError) as err:
        load_teacher(bad)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_empty_truncated_and_foreign_files(tmp_path, tiny_teacher):
    cases = {"missing.pt": None, "empty.pt": b"", "truncated.pt": tiny_teacher.read_bytes()[:300],
             "text.pt": b"hello, not a torch file\n"}
    for name, data in cases.items():
        p = tmp_path / name
        if data is not None:
            p.write_bytes(data)
        with pytest.raises(KdccError, match=name):
            load_teacher(p)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "kdcc-teacher", "version": 1, "x": _Payload(marker)}, evil)
    with pytest.raises(KdccError, match="refused"):
        load_teacher(evil)
    assert not marker.exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(KdccError):
        load_teacher(raw)
    assert not marker.exists()


def test_save_is_atomic_and_deterministic(tmp_path):
    a = make_tiny_teacher(tmp_path / "a.pt", seed=1)
    b = make_tiny_teacher(tmp_path / "b.pt", seed=1)
    assert a.read_bytes() == b.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_homogeneous_spec_keeps_its_v1_form():
    from tests.conftest import tiny_spec

    d = tiny_spec().to_dict()
    assert "obs_sizes" not in d and "action_sizes" not in d and "widths" not in d["agent"] and "state" not in d["env"]
