"""Signed bundles: the OpenSSF `model-signing` library over a bundle directory, with EC keys, offline.

`kdcc.sig` (inside the bundle) is a Sigstore bundle whose in-toto statement lists every file's
sha256 — manifest.json included, kdcc.sig itself excluded — signed by an EC private key (P-256,
P-384 or P-521: what model-signing supports; Ed25519 and RSA keys are refused before any work).
A signature proves origin on top of the manifest's integrity: whoever holds the public key knows
the bundle is byte for byte what the key's owner signed. ECDSA signatures are randomised, so
kdcc.sig is the one file of a bundle that differs between two signings of the same bytes.

Signing hashes files on disk (model-signing reads a directory), so a compile signs its bundle in
a scratch copy before publishing it: the signed bundle appears at once or not at all.
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes
from kdcc.targets.bundle.integrity import SIGNATURE, IntegrityError, check_bundle, diff_files, tree_digests

__all__ = ["check_private_key", "check_public_key", "sign_bundle", "sign_tree", "verify_signature"]

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_SUPPORTED = "model-signing signs with EC keys on P-256, P-384 or P-521 only"


def _check_ec(key, path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        raise KdccError(f"{path}: an Ed25519 key, which is not supported ({_SUPPORTED}; make one with "
                        "`openssl ecparam -name prime256v1 -genkey -noout -out key.pem`)")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        raise KdccError(f"{path}: a {type(key).__name__.lstrip('_')} key, which is not supported ({_SUPPORTED})")
    if key.curve.name not in _CURVES:
        raise KdccError(f"{path}: an EC key on curve {key.curve.name}, which is not supported ({_SUPPORTED})")


def _load_key(path: str | Path, private: bool) -> Path:
    """Read a PEM key (private: unencrypted) and check it is an EC key of a supported curve."""
    from cryptography.hazmat.primitives import serialization

    path = Path(path)
    what = "signing key" if private else "public key"
    try:
        data = path.read_bytes()
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except OSError as e:
        raise KdccError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    except (ValueError, TypeError) as e:
        kind = "an unencrypted PEM private key" if private else "a PEM public key"
        raise KdccError(f"{path}: not {kind} ({str(e).splitlines()[0][:100]})") from None
    _check_ec(key, path)
    return path


def check_private_key(path: str | Path) -> Path:
    """The PEM private key at `path`, checked to be one model-signing can sign with (KdccError otherwise)."""
    return _load_key(path, private=True)


def check_public_key(path: str | Path) -> Path:
    """The PEM public key at `path`, checked to be an EC key of a supported curve (KdccError otherwise)."""
    return _load_key(path, private=False)


def _signature_bytes(root: Path, key: Path) -> bytes:
    from model_signing import hashing, signing

    hashing_config = hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)
    with tempfile.TemporaryDirectory(prefix=".kdcc-sign.") as scratch:
        out = Path(scratch) / SIGNATURE
        signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(hashing_config).sign(root, out)
        return out.read_bytes()


def sign_tree(files: dict[str, bytes], key: str | Path, scratch: Path) -> bytes:
    """kdcc.sig for a bundle not yet published (`files`: path -> bytes), written to `scratch` to be hashed."""
    tree = scratch / "bundle"
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    return _signature_bytes(tree, check_private_key(key))


def sign_bundle(root: str | Path, key: str | Path) -> Path:
    """Sign a published bundle in place: it must match its manifest first; kdcc.sig is written atomically."""
    root, key = Path(root), check_private_key(key)
    check_bundle(root)
    atomic_write_bytes(root / SIGNATURE, _signature_bytes(root, key))
    return root / SIGNATURE


def _signed_digests(sig: Path) -> dict[str, str]:
    """path -> sha256 as the signature's statement lists them (read without trusting it: to name a file)."""
    try:
        envelope = json.loads(sig.read_text())["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise IntegrityError(f"{sig}: not a readable model-signing signature ({reason})") from None


def verify_signature(root: str | Path, public_key: str | Path) -> None:
    """The bundle's kdcc.sig is valid for `public_key` and every file matches what it signed; an IntegrityError
    naming the problem (unsigned, wrong key, a changed/added/missing file) otherwise."""
    from model_signing import verifying

    root, public_key = Path(root), check_public_key(public_key)
    sig = root / SIGNATURE
    if not sig.is_file():
        raise IntegrityError(f"{root}: not signed (no {SIGNATURE}; sign it with `kdcc sign {root} --key KEY.pem`)")
    signed = _signed_digests(sig)
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(root, sig)
    except Exception as e:  # model-signing raises ValueError and cryptography's own types alike
        diffs = diff_files(signed, tree_digests(root, exclude=(SIGNATURE,)))
        if diffs:
            raise IntegrityError(f"{root}: does not match its signature: {', '.join(diffs[:3])}"
                                 + (f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else "")) from None
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise IntegrityError(f"{sig}: not a valid signature by {public_key} (wrong key, or the signature was "
                             f"altered: {reason})") from None
