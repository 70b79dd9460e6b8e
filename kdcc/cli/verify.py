"""`kdcc verify BUNDLE [--key PUB.pem]`: is this bundle what was compiled (and signed)?"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

_EXAMPLES = """examples:
  kdcc verify build/
  kdcc verify build/ --key pub.pem
  kdcc verify build/ --key pub.pem --json
"""

_DESCRIPTION = """Without --key: check every file of the bundle against its manifest.json (sha256 and the list of
files). With --key: also check kdcc.sig, the model-signing signature, against the EC public key (PEM), and every file
against what it signed. A failure names the changed, added or missing file. Exit status: 0 verified, 1 verification
failed (a file changed, added or missing; no manifest; unsigned; wrong key), 2 bad input (not a bundle; an unreadable
or unsupported key)."""


def add_parser(sub, common) -> None:
    p = sub.add_parser("verify", parents=[common], epilog=_EXAMPLES, description=_DESCRIPTION,
                       help="check a bundle against its manifest and, with --key, its signature (exit 0/1/2)")
    p.add_argument("bundle", help="bundle directory written by `kdcc compile -o`")
    p.add_argument("--key", metavar="PUB.pem", help="EC public key, PEM: check the signature too")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from kdcc.api import verify_bundle
    from kdcc.targets.bundle.integrity import IntegrityError

    try:
        r = verify_bundle(args.bundle, args.key)
    except IntegrityError as e:
        if args.json:
            print(json.dumps({"bundle": args.bundle, "ok": False, "reason": str(e)}, sort_keys=True))
        print(f"kdcc verify: FAILED: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**r, "ok": True}, sort_keys=True))
    elif not args.quiet:
        how = (f"; signature valid for {args.key}" if args.key else
               "; signed, signature not checked (give --key)" if r["signed"] else "; not signed")
        print(f"OK: {args.bundle} matches its manifest ({r['files']} files){how}")
    return 0
