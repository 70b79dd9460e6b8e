"""The report as data: sections of paragraphs, bullet lists, tables and images.

Every report kdcc writes or prints (report.md, report.html, the terminal table of
`kdcc compile`, its `--json`) is built once as these records and then handed to
a small renderer (kdcc.reports.markdown, .html, .terminal), so a column or a
sentence is written in one place and every output agrees on it. Text is a
sequence of spans so that emphasis and code survive into both markdown and HTML
without either renderer parsing the other's syntax.

A table's rows are dicts of plain JSON values (the `--json` form); a column
turns a row into its cell text, so the numbers stay numbers until they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence, Union

__all__ = ["Span", "Text", "text", "bold", "code", "plain", "Paragraph", "Item", "Items", "Column", "Table",
           "Image", "Block", "Section", "Document", "as_sections"]


@dataclass(frozen=True)
class Span:
    text: str
    style: Literal["", "bold", "code"] = ""


Text = tuple[Span, ...]


def text(*parts: str | Span) -> Text:
    """Spans from strings (plain) and spans made by `bold` / `code`."""
    return tuple(p if isinstance(p, Span) else Span(p) for p in parts)


def bold(s: str) -> Span:
    return Span(s, "bold")


def code(s: str) -> Span:
    return Span(s, "code")


def plain(t: Text) -> str:
    """The text without styling: an HTML <title>, a terminal line."""
    return "".join(s.text for s in t)


@dataclass(frozen=True)
class Paragraph:
    text: Text


@dataclass(frozen=True)
class Item:
    """One bullet, with the bullets nested under it."""

    text: Text
    children: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Items:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Column:
    """One column of a table: its key in a row, its header, how its cells align and read.

    `cell` sees the whole row, for cells that join two values (latency and the device it is on).
    """

    key: str
    header: str
    align: Literal["left", "right"] | None = "right"  # None: unknown (a table read from markdown)
    cell: Callable[[Mapping[str, Any]], str] | None = None

    def text(self, row: Mapping[str, Any]) -> str:
        if self.cell is not None:
            return self.cell(row)
        value = row.get(self.key)
        return "" if value is None else str(value)


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[Mapping[str, Any], ...]
    title: str = ""  # shown by the terminal renderer; documents name tables by their section

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def cells(self) -> list[list[str]]:
        return [[c.text(row) for c in self.columns] for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        """Columns (key, header) and the rows' values, unformatted."""
        return {"columns": [{"key": c.key, "header": c.header} for c in self.columns],
                "rows": [dict(row) for row in self.rows]}


@dataclass(frozen=True)
class Image:
    """A PNG, base64-encoded; only the HTML report shows images."""

    alt: str
    png_base64: str


Block = Union[Paragraph, Items, Table, Image]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Document:
    """A title, what comes before the first section (the summary), then the sections."""

    title: Text
    intro: tuple[Block, ...]
    sections: tuple[Section, ...]


def as_sections(extra: Sequence[Section]) -> list[Section]:
    """Extra sections as given by the compile flow: Section records, never markdown to parse back."""
    for s in extra:
        if not isinstance(s, Section):
            raise TypeError(f"a report section must be a Section, got {type(s).__name__}")
    return list(extra)
