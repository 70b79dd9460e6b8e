"""Fuzz what reads a bundle or a record: profile.json, manifest.json, kdcc.sig, record directories.

The bundle is a small stand-in (a real profile.json from tests/fuzz/corpus, fake libraries, a manifest
made for them, a signature by a key made here), so no TVM build runs; the readers are called directly
and through `kdcc inspect` / `verify` / `check`, which must answer 0, 1 or 2 with one line on error."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from kdcc.cli.app import main
from kdcc.targets.bundle.agent_policy import open_agent_policies
from kdcc.targets.bundle.integrity import check_bundle, manifest_bytes
from kdcc.targets.bundle.policy import open_bundle_policy
from kdcc.targets.bundle.signing import sign_bundle, verify_signature
from kdcc.targets.bundle.team_check import load_selection, team_check
from tests.fuzz._fuzz import FUZZ, check_reader, mutated_bytes, mutated_json

CORPUS = Path(__file__).parent / "corpus"
PROFILE = json.loads((CORPUS / "bundle" / "profile.json").read_text())


def _keys(d: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = d / "key.pem", d / "pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


FILES = {"lib/cpu/policy.so": b"\x7fELF not a library", "student.onnx": b"not onnx", "agents/agent.onnx": b"not onnx"}
_KEYS = Path(tempfile.mkdtemp(prefix="kdcc-fuzz-keys."))
PRIV, PUB = _keys(_KEYS)


def _bundle(d: Path, profile: dict | bytes, sign: bool = False) -> Path:
    """A stand-in bundle whose manifest matches its files (so readers get past the integrity check)."""
    root = d / "bundle"
    data = profile if isinstance(profile, bytes) else json.dumps(profile).encode()
    files = {**FILES, "profile.json": data}
    for rel, blob in {**files, "manifest.json": manifest_bytes(files)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    if sign:
        sign_bundle(root, PRIV)
    return root


def _cli(argv: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    assert rc in (0, 1, 2), (argv, rc)
    assert rc != 2 or len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
    assert "internal error" not in err.getvalue(), (argv, err.getvalue())  # exit 1 is a verdict here, never a crash


def _read_all(root: Path, pub: Path) -> None:
    check_reader(lambda: check_bundle(root))
    check_reader(lambda: verify_signature(root, pub))
    check_reader(lambda: team_check([load_selection(str(root / "profile.json"))]))
    check_reader(lambda: open_bundle_policy(root, runner="onnx"))
    check_reader(lambda: open_agent_policies(root, runner="onnx"))
    _cli(["inspect", str(root)])


@FUZZ
@given(st.one_of(mutated_json(PROFILE), mutated_bytes(json.dumps(PROFILE).encode())))
def test_profile_json(profile):
    with tempfile.TemporaryDirectory() as tmp:
        _read_all(_bundle(Path(tmp), profile), PUB)


@FUZZ
@given(st.sampled_from(["manifest.json", "kdcc.sig"]), st.data())
def test_manifest_and_signature(which, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = _bundle(Path(tmp), PROFILE, sign=True)
        path = root / which
        if data.draw(st.booleans()):
            path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        else:
            path.write_text(json.dumps(data.draw(mutated_json(json.loads(path.read_text())))))
        _read_all(root, PUB)
        _cli(["verify", str(root), "--key", str(PUB)])


RECORD_FILES = sorted(p.relative_to(CORPUS / "record").as_posix() for p in (CORPUS / "record").rglob("*") if p.is_file())


@FUZZ
@given(st.sampled_from(RECORD_FILES), st.data())
def test_record_directory(which, data):
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record"
        shutil.copytree(CORPUS / "record", record)
        path = record / which
        if which.endswith(".json") and data.draw(st.booleans()):
            path.write_text(json.dumps(data.draw(mutated_json(json.loads(path.read_text())))))
        else:
            path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        _cli(["check", str(record), "--against", str(CORPUS / "record")])
        _cli(["check", str(CORPUS / "record"), "--against", str(record)])
        _cli(["inspect", str(record)])
