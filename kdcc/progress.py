"""Progress bars on stderr (rich) with rate and ETA; silent when quiet, in CI or off a terminal.
Notes (one line each, on stderr) are silent only when quiet.

Ctrl-C: Python raises KeyboardInterrupt wherever the main thread is, and one raised
inside a finaliser (`__del__`, a weakref callback) is printed and dropped, so a long
compile could go on as if nothing happened. The CLI's handler also sets a flag that
every progress step, every pass and every final rename checks (`check_interrupted`).
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

__all__ = ["progress_bar", "stderr_console", "set_quiet", "is_quiet", "note", "install_interrupt_handler",
           "check_interrupted"]

stderr_console = Console(stderr=True)
_quiet = False
_interrupted = False


def _on_sigint(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def install_interrupt_handler() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual, and is remembered (see the module docstring)."""
    global _interrupted
    _interrupted = False
    signal.signal(signal.SIGINT, _on_sigint)


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if its first KeyboardInterrupt was swallowed."""
    if _interrupted:
        raise KeyboardInterrupt


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def note(text: str) -> None:
    """A one-line `kdcc: note: ...` on stderr (what an import assumed, what eval runs); silent under --quiet."""
    if not _quiet:
        print(f"kdcc: note: {text}", file=sys.stderr)


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.1f}/s" if task.speed else "", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int):
    """Yields `advance(n=1)`; a no-op when quiet, in CI, or when stderr is not a terminal."""
    if _quiet or os.environ.get("CI") or not sys.stderr.isatty():
        yield lambda n=1: check_interrupted()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=stderr_console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            check_interrupted()
            bar.advance(task, n)

        yield advance
