"""`kdcc sign BUNDLE --key KEY.pem`: sign a compiled bundle (OpenSSF model-signing, EC keys, offline)."""

from __future__ import annotations

__all__ = ["add_parser", "run"]

_EXAMPLES = """examples:
  openssl ecparam -name prime256v1 -genkey -noout -out key.pem && openssl ec -in key.pem -pubout -out pub.pem
  kdcc sign build/ --key key.pem
  kdcc verify build/ --key pub.pem
"""


def add_parser(sub, common) -> None:
    p = sub.add_parser("sign", parents=[common], epilog=_EXAMPLES,
                       help="sign a bundle with an EC private key (kdcc.sig, inside the bundle)",
                       description="Check the bundle against its manifest.json, then sign all its files (the manifest "
                       "included) with model-signing and an EC private key in PEM (P-256, P-384 or P-521; Ed25519 "
                       "and RSA are not supported), writing kdcc.sig into the bundle atomically. Exit status: 0 "
                       "signed, 1 the bundle does not match its manifest, 2 bad input (not a bundle, unreadable or "
                       "unsupported key).")
    p.add_argument("bundle", help="bundle directory written by `kdcc compile -o`")
    p.add_argument("--key", required=True, metavar="KEY.pem", help="EC private key, PEM, unencrypted")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from kdcc.api import sign_bundle
    from kdcc.targets.bundle.integrity import IntegrityError

    try:
        sig = sign_bundle(args.bundle, args.key)
    except IntegrityError as e:
        print(f"kdcc sign: refused: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"signed {args.bundle}: {sig}")
    return 0
