"""Trust in a bundle: manifest.json checked where bundles are opened, kdcc sign / verify / compile --sign-key
(model-signing, EC keys), profile.json v2 against its schema, and kdcc team-check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kdcc.cli.app import main
from kdcc.reports.record_compare import load_record
from kdcc.targets.bundle.integrity import MANIFEST, SIGNATURE, manifest_bytes
from tests.conftest import assert_eps_distribution

REPO = Path(__file__).resolve().parents[2]


def _pem(key, path: Path, public: bool = False) -> Path:
    if public:
        data = key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    mine, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
    return {"key": _pem(mine, d / "key.pem"), "pub": _pem(mine, d / "pub.pem", public=True),
            "other_pub": _pem(other, d / "other.pem", public=True),
            "ed25519": _pem(ed25519.Ed25519PrivateKey.generate(), d / "ed.pem")}


@pytest.fixture
def bundle(host_bundle, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(host_bundle("spread"), out)
    return out


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _flip(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_manifest_lists_every_other_file_with_its_digest_and_size(bundle):
    doc = json.loads((bundle / MANIFEST).read_text())
    on_disk = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert set(doc["files"]) == set(on_disk) - {MANIFEST}
    assert (bundle / MANIFEST).read_bytes() == manifest_bytes(on_disk)
    assert doc["files"]["lib/cpu/agent.so"]["bytes"] == len(on_disk["lib/cpu/agent.so"])


def test_sign_then_verify_and_every_tampering_is_named(bundle, keys, capsys):
    assert _run(capsys, "verify", bundle, "--key", keys["pub"])[0] == 1  # not signed yet
    assert _run(capsys, "sign", bundle, "--key", keys["key"])[0] == 0
    assert (bundle / SIGNATURE).is_file() and not list(bundle.glob(".*"))  # written atomically, nothing left
    code, out, _ = _run(capsys, "verify", bundle, "--key", keys["pub"])
    assert code == 0 and "signature valid" in out
    code, _, err = _run(capsys, "verify", bundle, "--key", keys["other_pub"])
    assert code == 1 and "not a valid signature" in err

    _flip(bundle / "lib" / "cpu" / "agent.so")
    for key in ((), ("--key", keys["pub"])):
        code, _, err = _run(capsys, "verify", bundle, *key)
        assert code == 1 and "lib/cpu/agent.so changed" in err
    # the manifest rewritten to match: only the signature still tells
    files = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    (bundle / MANIFEST).write_bytes(manifest_bytes(files))
    assert _run(capsys, "verify", bundle)[0] == 0
    code, _, err = _run(capsys, "verify", bundle, "--key", keys["pub"])
    assert code == 1 and "does not match its signature: lib/cpu/agent.so changed, manifest.json changed" in err


@pytest.mark.parametrize("tamper, named", [
    (lambda b: (b / "lib" / "cpu" / "extra.so").write_bytes(b"\0"), "lib/cpu/extra.so added"),
    (lambda b: (b / "agents" / "agent.onnx").unlink(), "agents/agent.onnx missing"),
])
def test_an_added_or_deleted_file_fails_verify(bundle, keys, capsys, tamper, named):
    assert _run(capsys, "sign", bundle, "--key", keys["key"])[0] == 0
    tamper(bundle)
    code, _, err = _run(capsys, "verify", bundle, "--key", keys["pub"])
    assert code == 1 and named in err and len(err.strip().splitlines()) == 1


def test_eval_decentralised_eval_and_certify_refuse_a_tampered_bundle(bundle, capsys):
    _flip(bundle / "lib" / "cpu" / "agent.so")
    for argv in (["eval", bundle, "--episodes", "1"], ["eval", bundle, "--episodes", "1", "--decentralised"],
                 ["certify", bundle, "--episodes", "1"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and err.strip().endswith("does not match its manifest.json: lib/cpu/agent.so changed")
    (bundle / MANIFEST).unlink()  # as a bundle made before manifests
    code, _, err = _run(capsys, "eval", bundle, "--episodes", "1")
    assert code == 2 and "no manifest.json" in err and "recompile" in err


def test_bad_keys_and_non_bundles_are_bad_input(bundle, keys, tmp_path, capsys):
    code, _, err = _run(capsys, "sign", bundle, "--key", keys["ed25519"])
    assert code == 2 and "Ed25519" in err and "not supported" in err and not (bundle / SIGNATURE).exists()
    assert _run(capsys, "verify", bundle, "--key", tmp_path / "missing.pem")[0] == 2
    assert _run(capsys, "verify", bundle, "--key", keys["key"])[0] == 2  # a private key where a public one goes
    assert _run(capsys, "verify", tmp_path)[0] == 2
    code, _, err = _run(capsys, "compile", "nowhere.pt", "-o", tmp_path / "out", "--sign-key", keys["ed25519"])
    assert code == 2 and "Ed25519" in err and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def signed_vm_only(keys, tmp_path_factory) -> Path:
    """`compile --sign-key --no-direct` (the exact pipeline: no training), run once for this module's tests."""
    from tests.conftest import make_tiny_teacher

    d = tmp_path_factory.mktemp("signed")
    teacher = make_tiny_teacher(d / "t.pt", seed=3)
    assert main(["compile", str(teacher), "--target", "host", "--pipeline", "exact", "-o", str(d / "bundle"),
                 "--sign-key", str(keys["key"]), "--no-direct", "--certify-episodes", "0", "-q"]) == 0
    return d / "bundle"


def test_compile_with_a_sign_key_publishes_a_signed_bundle(signed_vm_only, keys, capsys):
    assert _run(capsys, "verify", signed_vm_only, "--key", keys["pub"])[0] == 0


def test_a_bundle_without_vm_free_libraries_is_whole_and_runs_its_vm_libraries(signed_vm_only, capsys):
    """--no-direct: profile.json says why each step has no `.direct.so` (and is valid), the manifest lists
    none, and eval and decentralised eval fall back on the Relax VM libraries."""
    import jsonschema

    from kdcc.targets.bundle.agent_policy import open_agent_policies
    from kdcc.targets.bundle.direct_stages import NOT_ASKED
    from kdcc.targets.bundle.policy import open_bundle_policy

    bundle = signed_vm_only
    doc = json.loads((bundle / "profile.json").read_text())
    jsonschema.validate(doc, json.loads((REPO / "docs" / "profile.schema.json").read_text()),
                        cls=jsonschema.Draft202012Validator)
    records = [lib["direct"] for lib in doc["libraries"]]
    records += [lib["direct"] for robot in doc["robots"] for lib in robot["libraries"].values()]
    assert len(records) == 3 and all(r == {"skipped": NOT_ASKED} for r in records)
    checks = [doc["verification"]["direct"]] + [robot["verification"]["direct"] for robot in doc["robots"]]
    assert all(c == {"checked": False, "skipped": NOT_ASKED} for c in checks)
    assert "vm_free_library_bytes" not in doc["robots"][0]["envelope"]["per_step"]["cpu"]["memory"]
    manifest = json.loads((bundle / MANIFEST).read_text())["files"]
    assert "lib/cpu/policy.so" in manifest and not [f for f in manifest if f.endswith(".direct.so")]
    assert not list(bundle.rglob("*.direct.so"))
    assert open_bundle_policy(bundle)[2] == "compiled host library (Relax VM)"
    assert open_agent_policies(bundle)[2] == "3 agents loaded one by one: lib/cpu (agent.so)"
    code, out, _ = _run(capsys, "eval", bundle, "--episodes", "1", "--decentralised")
    assert code == 0, out


def test_a_fresh_profile_is_valid_against_the_schema_and_inspect_prints_each_role(bundle, capsys):
    import jsonschema

    schema = json.loads((REPO / "docs" / "profile.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads((bundle / "profile.json").read_text())
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    agent = doc["robots"][0]
    assert agent["needs_from_others"] == [] and agent["envelope"]["estimated"] is True
    assert agent["trained_for"]["composition"] == ["agent"] * 3
    eps = agent["certified_eps"]  # the compile's certify stage: 1 probe episode of 25 steps, 3 agents
    assert (eps["method"], eps["eps_scale"], eps["episodes"]) == ("crown", "std", 1)
    for policy in ("teacher", "student"):
        assert_eps_distribution(eps[policy], 75)
    assert "certified_eps" not in doc["robots"][-1]  # the monitor acts on nothing
    bad = json.loads(json.dumps(doc))
    bad["robots"][0]["certified_eps"]["student"]["certified_at"]["0.1"] = 1.5  # not a fraction: refused
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft202012Validator)
    report = (bundle / "report.md").read_text().split("## Certified robustness", 1)[1]
    s = eps["student"]
    assert f"| student | agent | 75 | {s['median']:.4g} | {s['p10']:.4g} | {s['certified_at']['0.01']:.0%} |" in report
    assert "| teacher | agent | 75 |" in report and "Score against certified ε" not in report  # w_robust is 0
    code, out, _ = _run(capsys, "inspect", bundle)
    assert code == 0 and "needs from others  nothing (decentralised)" in out and "per step (estimated)" in out
    assert f"certified ε        median {s['median']:.3g}, p10 {s['p10']:.3g} (teacher " in out
    assert "matches manifest.json" in out


def test_team_check(bundle, tmp_path, capsys):
    p = bundle / "profile.json"
    assert _run(capsys, "team-check", p)[0] == 0
    assert _run(capsys, "team-check", f"{p}#agent:0", f"{bundle}#agent:1", f"{p}#agent:2")[0] == 0
    code, out, _ = _run(capsys, "team-check", f"{p}#agent:0", f"{p}#agent:1")
    assert code == 1 and "agents not run by any selection: 2 (agent)" in out
    code, out, _ = _run(capsys, "team-check", p, f"{p}#agent:1")
    assert code == 1 and "agent 1 is run twice" in out
    other = json.loads(p.read_text())
    for robot in other["robots"]:
        robot["trained_for"]["student"]["weights_sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, out, _ = _run(capsys, "team-check", f"{p}#agent:0", f"{tmp_path / 'other.json'}#agent:1,agent:2")
    assert code == 1 and "different students" in out
    assert _run(capsys, "team-check", f"{p}#pilot")[0] == 2
    (tmp_path / "v1.json").write_text(json.dumps({**other, "version": 1}))
    code, _, err = _run(capsys, "team-check", tmp_path / "v1.json")
    assert code == 2 and "recompile" in err


def test_check_finds_the_record_inside_a_bundle_beside_its_manifest(bundle):
    assert load_record(bundle).path == bundle / "record"
