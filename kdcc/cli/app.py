"""`kdcc` command line: one thin module per command, each a layer over `kdcc.api`.

Every KdccError becomes one line on stderr and exit status 2; anything unexpected (a bug in
kdcc or a library it uses) one line and exit status 1, its traceback with -v. Heavy imports
(torch, TVM) happen inside the commands so `kdcc --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from kdcc import __version__
from kdcc.cli import (
    calibrate,
    certify,
    check,
    collect,
    convert,
    inspect,
    measure,
    passes,
    profile,
    sign,
    team_check,
    verify,
)
from kdcc.cli import compile as compile_
from kdcc.cli import eval as eval_
from kdcc.cli.help import polish
from kdcc.core.errors import KdccError

__all__ = ["main"]

EXAMPLES = """examples:
  kdcc eval examples/spread_teacher.pt --episodes 100
  kdcc collect examples/spread_teacher.pt -o data.npz --episodes 200
  kdcc profile examples/spread_teacher.pt --target orin
  kdcc compile examples/spread_teacher.pt --target orin -o build/
  kdcc certify build/ --teacher examples/spread_teacher.pt
  kdcc verify build/ --key pub.pem
"""


# in the order `kdcc --help` lists them
COMMANDS = (eval_, collect, profile, compile_, certify, measure, sign, verify, team_check, passes, check, calibrate,
            convert, inspect)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are bad input like any other: one line naming the problem, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kdcc", description="Compile multi-agent RL teachers into small, fast "
                                "students for edge targets (Jetson Orin).", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"kdcc {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail, and tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub, common)
    polish(sub)  # defaults and examples in every subcommand's --help
    return p


# what torch, TVM and the C++ runtime say when an allocation fails (a MemoryError is one by definition)
_OOM = re.compile(r"can't allocate memory|cannot allocate memory|bad_alloc|out of memory|failed to allocate|"
                  r"not enough memory|failed to map segment|can't start new thread", re.I)


# what CPython says when a C extension's allocation failed and it forgot to set MemoryError (numpy, imports)
_NULL_RETURN = re.compile(r"without (setting an )?exception|with an exception set|error return without", re.I)


def _near_address_space_limit(margin: int = 64 * 2**20) -> bool:
    """The process has come within `margin` of its address-space limit (ulimit -v): an allocation failed."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return False
    try:
        status = open("/proc/self/status").read()
    except OSError:
        return False
    peak = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmPeak")), 0)
    return peak >= soft - margin


def _out_of_memory(e: BaseException) -> bool:
    """An allocation failed, however the library that met it says so: MemoryError, torch's and TVM's
    RuntimeError text, a library that could not be mapped, or a C extension's bare SystemError while the
    process stands at its address-space limit (anywhere else a SystemError is a bug, and stays one)."""
    if isinstance(e, MemoryError) or _OOM.search(str(e)):
        return True
    return isinstance(e, (SystemError, RuntimeError)) and bool(_NULL_RETURN.search(str(e))) and \
        _near_address_space_limit()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160]}" if text else type(e).__name__


_SHORT_EXIT: list[bool] = []  # set once memory ran out: the process should end without the interpreter's teardown


def cli(argv: list[str] | None = None) -> None:
    """The `kdcc` command (and `python -m kdcc`): `main`, then the exit. After running out of memory the process
    ends at once (os._exit, output flushed): the interpreter's own teardown, freeing what the failed work
    allocated, can itself fail to allocate and print a bare `MemoryError:` per object (seen from a fresh
    checkout, whose modules were still being compiled at the limit) under the one line already said. Everything
    kdcc writes is atomic, so skipping the teardown leaves nothing half-written."""
    status = main(argv)
    if _SHORT_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except Exception as e:  # not bad input, memory or the system (answered in _run): a bug
        if args.verbose:
            raise
        print(f"kdcc {args.command}: internal error: {_first_line(e)} (a bug in kdcc or a library it uses; "
              "run again with -v for the traceback and please report it)", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    """The command, with what the user can act on as one line: bad input, out of memory, a refusing system."""
    import warnings

    # torch.export's own deprecation noise, raised while lowering to TVM: not the user's concern
    warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*", category=FutureWarning)
    try:
        from kdcc.core.interrupt import install_interrupt_handler
        from kdcc.core.progress import set_quiet

        set_quiet(args.quiet)
        install_interrupt_handler()
        return int(args.func(args) or 0)
    except KdccError as e:
        if args.verbose:
            raise
        print(f"kdcc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError, ImportError, SystemError) as e:  # ImportError: a library not mapped
        if args.verbose or not _out_of_memory(e):
            raise
        e.__traceback__ = None  # the failed work's frames, and what they hold, go before anything is formatted
        advice = ("nothing was written: free memory, raise the limit (ulimit -v, the container's), or use fewer "
                  "--episodes")
        try:
            line = f"kdcc {args.command}: error: out of memory ({_first_line(e)}); {advice}"
        except MemoryError:  # still too little to format the cause: say the rest
            line = f"kdcc {args.command}: error: out of memory; {advice}"
        print(line, file=sys.stderr)
        _SHORT_EXIT.append(True)
        return 2
    except OSError as e:  # a file the system refused (permissions, full disk, a path through a file)
        if args.verbose:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"kdcc {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kdcc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    cli()
