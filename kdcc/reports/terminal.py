"""Tables and sections in the terminal, with rich: what `kdcc compile` prints.

rich is imported when a table is made, not with this module, so `kdcc --help`
stays fast.
"""

from __future__ import annotations

from typing import Any

from kdcc.reports.document import Image, Items, Paragraph, Section, Table, plain

__all__ = ["rich_table", "print_section"]


def rich_table(table: Table, title: str | None = None) -> Any:
    """The table as a rich Table (left-aligned where the column says so, else right)."""
    from rich.table import Table as RichTable

    out = RichTable(title=table.title if title is None else title)
    for column in table.columns:
        out.add_column(column.header, justify="left" if column.align == "left" else "right")
    for row in table.cells():
        out.add_row(*row)
    return out


def _items(items, depth: int = 0) -> list[str]:
    lines = []
    for item in items:
        lines.append("  " * depth + "- " + plain(item.text))
        lines += _items(item.children, depth + 1)
    return lines


def print_section(console, section: Section) -> None:
    """The section's title, then its tables as rich tables and its text as plain lines (images are skipped)."""
    console.print(section.title, style="bold")
    for block in section.blocks:
        if isinstance(block, Table):
            console.print(rich_table(block, title=""))
        elif isinstance(block, Items):
            console.print("\n".join(_items(block.items)), highlight=False)
        elif isinstance(block, Paragraph):
            console.print(plain(block.text), highlight=False)
        elif not isinstance(block, Image):
            raise TypeError(f"the terminal has no form for {type(block).__name__}")
