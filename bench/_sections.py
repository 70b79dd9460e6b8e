"""Sections of bench/results.md written by the benchmarks that run after bench/run.py (which writes the file).

Each script owns one section between `<!-- NAME -->` and `<!-- /NAME -->`: rerunning it replaces
that section in place; a results.md without it gets it appended.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    block = f"<!-- {name} -->\n{text.rstrip()}\n<!-- /{name} -->\n"
    old = path.read_text() if path.is_file() else ""
    pattern = re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->\n", re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    path.write_text(new)
