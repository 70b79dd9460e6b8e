"""`kdcc team-check PROFILE...`: do these roles make the team their teacher was trained for?"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

_EXAMPLES = """examples:
  kdcc team-check build/profile.json
  kdcc team-check robotA/profile.json#agent0 robotB/profile.json#agent1
  kdcc team-check build/profile.json#agent:0 build/profile.json#agent:1 build/profile.json#agent:2
"""

_DESCRIPTION = """Read the profile.json of one or more bundles (or their directories), each optionally narrowed to
some roles (PROFILE#ROLE,ROLE) or to one agent index of a shared role (PROFILE#ROLE:AGENT), and say whether together
they make the team the student was trained in: the same team and environment, the same student (its digests), and
every agent index run exactly once, in the role it was trained as. Exit status: 0 yes, 1 no (the reason is printed),
2 bad input (an unreadable or old profile.json, an unknown role)."""


def add_parser(sub, common) -> None:
    p = sub.add_parser("team-check", parents=[common], epilog=_EXAMPLES, description=_DESCRIPTION,
                       help="whether roles from profile.json files compose the team they were trained in (exit 0/1/2)")
    p.add_argument("profiles", nargs="+", metavar="PROFILE[#ROLE[:AGENT],...]",
                   help="a bundle's profile.json (or directory), optionally with roles")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from kdcc.api import team_check

    r = team_check(args.profiles)
    if args.json:
        print(json.dumps(r.to_dict(), sort_keys=True))
    elif not args.quiet or not r.ok:
        print(f"{'yes' if r.ok else 'no'}: {r.reason}")
    return 0 if r.ok else 1
