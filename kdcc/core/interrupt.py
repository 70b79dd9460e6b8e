"""Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread is, and one raised
inside a finaliser (`__del__`, a weakref callback) is printed and dropped, so a
long compile could go on as if nothing happened. The CLI's handler also sets a
flag that every progress step, every pass and every final rename checks
(`check_interrupted`).
"""

from __future__ import annotations

import signal

__all__ = ["install_interrupt_handler", "check_interrupted"]

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
