"""Fuzz the data readers: datasets (.npz), target TOML profiles, `--opt` and budget values."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kdcc.cli.args import budget_from_args, pass_options
from kdcc.core.fileio import npz_bytes
from kdcc.inputs.dataset import FIELDS, load_dataset
from kdcc.passes import check_options
from kdcc.targets.profile import parse_profile
from tests.conftest import tiny_spec
from tests.fuzz._fuzz import FUZZ, NASTY, check_reader, mutated_bytes, mutated_json

SPEC = tiny_spec(hidden=4, embed=2, hypernet_embed=4)
N = 3


def _arrays() -> dict[str, np.ndarray]:
    kinds = {"f": np.float32, "i": np.int64, "b": np.bool_}
    arrays = {k: np.zeros((N, *shape(SPEC)), kinds[kind]) for k, (kind, shape) in FIELDS.items()}
    arrays["episode_end"][-1] = True
    return arrays


META = {"format": "kdcc-dataset", "version": 1, "spec": SPEC.to_dict(), "seeds": [0], "epsilon": 0.0}


def _npz(arrays: dict, meta) -> bytes:
    return npz_bytes({**arrays, "meta": np.array(json.dumps(meta))})


SEED = _npz(_arrays(), META)
BAD_ARRAYS = st.sampled_from([np.zeros(0), np.zeros((N, 2)), np.full((N,), np.nan, np.float32), np.array("x"),
                              np.zeros((N, 3, 5), np.int64), np.zeros((0, 3, 18), np.float32), np.array(7)])


@st.composite
def _datasets(draw) -> bytes:
    what = draw(st.sampled_from(["bytes", "meta", "array"]))
    if what == "bytes":
        return draw(mutated_bytes(SEED))
    if what == "meta":
        return _npz(_arrays(), draw(mutated_json(META)))
    arrays = _arrays()
    key = draw(st.sampled_from(sorted(arrays)))
    if draw(st.booleans()):
        del arrays[key]
    else:
        arrays[key] = draw(BAD_ARRAYS)
    return _npz(arrays, META)


@FUZZ
@given(_datasets(), st.booleans())
def test_dataset(data, with_spec):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        path.write_bytes(data)
        check_reader(lambda: load_dataset(path, SPEC if with_spec else None))


PROFILE = (Path(__file__).resolve().parents[2] / "targets" / "profiles" / "host.toml").read_text()
TOML_VALUES = st.one_of(st.sampled_from(["0", "-1", "1e999", "nan", "inf", '"x"', "[]", "{}", "true", "1e300",
                                         "9223372036854775807", '""']), st.integers().map(str))


@st.composite
def _toml(draw) -> str:
    if draw(st.booleans()):
        return draw(mutated_bytes(PROFILE.encode())).decode("utf-8", "replace")
    lines = PROFILE.splitlines()
    assigned = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.sampled_from(assigned))
        key = lines[i].split("=", 1)[0]
        lines[i] = f"{key}= {draw(TOML_VALUES)}" if draw(st.booleans()) else ""
    return "\n".join(lines)


@FUZZ
@given(_toml())
def test_target_profile(text):
    check_reader(lambda: parse_profile(text, "fuzz.toml"))


AMOUNTS = st.one_of(st.text(max_size=8), st.sampled_from(["30x", "0x", "-1", "1e999", "nan", "infx", "1.5M", "x",
                                                          "k", "", " ", "1e-999", "80k"]))


@FUZZ
@given(AMOUNTS, AMOUNTS, AMOUNTS, st.sampled_from(["robot", "team"]))
def test_budget_values(flops, latency, bytes_, scope):
    args = argparse.Namespace(budget_flops=flops, budget_bytes=bytes_, budget_latency_us=latency,
                              budget_energy_uj=None, budget_scope=scope)
    check_reader(lambda: budget_from_args(args))


OPT_KEYS = st.sampled_from(["distill.steps", "distill.w_relation", "prune.width", "prune.split", "distill.lr",
                            "approximate-mixer.goal", "nope.x", "distill.nope", "distill", ".", "distill.steps.x"])
OPT_VALUES = st.one_of(st.text(max_size=6), NASTY.map(str), st.sampled_from(["1e999", "nan", "-0", "true", "0x10"]))


@FUZZ
@given(st.lists(st.tuples(OPT_KEYS, st.sampled_from(["=", "", "=="]), OPT_VALUES), max_size=3))
def test_pass_options(pairs):
    check_reader(lambda: check_options(pass_options([k + sep + v for k, sep, v in pairs])))
