"""Progress bars on stderr (rich) with rate and ETA; silent when quiet, in CI or off a terminal.
Notes (one line each, on stderr) are silent only when quiet.

Ctrl-C handling lives in `kdcc.core.interrupt`; every bar step checks it.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from kdcc.core.interrupt import check_interrupted

__all__ = ["progress_bar", "stderr_console", "set_quiet", "is_quiet", "note"]

stderr_console = Console(stderr=True)
_quiet = False


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
