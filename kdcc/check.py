"""`kdcc check RECORD --against GOLDEN`: placeholder module, filled in by the regression-testing work."""

from __future__ import annotations

__all__ = ["add_parser"]


def add_parser(sub, common) -> None:
    """Register the `check` subcommand (kept here so cli.py stays a thin list of commands)."""
