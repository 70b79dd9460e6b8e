"""Argument values shared by commands: amounts (80k, 1.5M, 30x), budgets, pass options and names."""

from __future__ import annotations

from kdcc.core.errors import KdccError

__all__ = ["parse_amount", "budget_from_args", "pass_options", "pass_names", "add_rpc_args", "remote_from_args"]

_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def parse_amount(option: str, text: str, shown: str | None = None) -> float:
    """'80000', '80k', '1.5M' -> a positive number; anything else is a one-line error naming the option.

    `shown` is what the user typed when `text` is part of it (the number in '30x')."""
    t = text.strip().lower()
    scale = _SUFFIX.get(t[-1:], 1.0)
    try:
        value = float(t[:-1] if t[-1:] in _SUFFIX else t) * scale
    except ValueError:
        raise KdccError(f"{option}: cannot parse {shown or text!r} (examples: 80000, 80k, 1.5M)") from None
    if not value > 0 or value != value or value == float("inf"):
        raise KdccError(f"{option}: must be a positive number, got {shown or text!r}")
    return value


def budget_from_args(args):
    from kdcc.passes import Budget

    flops = ratio = None
    if args.budget_flops:
        if args.budget_flops.lower().endswith("x"):
            ratio = parse_amount("--budget-flops", args.budget_flops[:-1], shown=args.budget_flops)
        else:
            flops = parse_amount("--budget-flops", args.budget_flops)
    kw = {"flops": flops,
          "bytes": parse_amount("--budget-bytes", args.budget_bytes) if args.budget_bytes else None,
          "latency_us": parse_amount("--budget-latency-us", args.budget_latency_us) if args.budget_latency_us else None,
          "energy_uj": parse_amount("--budget-energy-uj", args.budget_energy_uj) if args.budget_energy_uj else None}
    return Budget(**kw, **({"ratio": ratio} if ratio else {}), scope=args.budget_scope)


def pass_options(pairs) -> dict[str, str]:
    """`--opt PASS.NAME=VALUE` pairs as {"PASS.NAME": "VALUE"}; the values stay strings: each pass's config
    types them (kdcc.passes.check_options), so a wrong key or type is named with the pass's options."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise KdccError(f"--opt: expected PASS.NAME=VALUE, got {pair!r}")
        out[key] = value
    return out


def pass_names(text):
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def add_rpc_args(p) -> None:
    """--rpc-tracker/--rpc-key/--rpc: where a command reaches the device through TVM RPC."""
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="a TVM RPC tracker the device's rpc_server is "
                   "registered with (python -m tvm.exec.rpc_tracker)")
    p.add_argument("--rpc-key", metavar="KEY", help="the key the device registered with the tracker")
    p.add_argument("--rpc", metavar="HOST:PORT", help="one TVM RPC server to use directly, without a tracker")


def remote_from_args(args):
    """The RPC options as a kdcc.targets.tvm.rpc.Remote, or None to run on this machine."""
    from kdcc.targets.tvm.rpc import parse_remote

    return parse_remote(args.rpc_tracker, args.rpc_key, args.rpc)
