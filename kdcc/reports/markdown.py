"""report.md: the compile report (kdcc.reports.compile_report) rendered as markdown.

The report goes into the bundle, which must be byte-identical for the same
inputs and seed, so it holds no wall times (those are printed and recorded).
Table rules carry each column's alignment; a `|` inside a cell is escaped so
headers such as `max |ΔQ|` do not split their column.
"""

from __future__ import annotations

from typing import Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.compile_report import compile_document
from kdcc.reports.document import Block, Document, Image, Item, Items, Paragraph, Section, Table, Text

__all__ = ["markdown_report", "render_markdown", "markdown_blocks"]

_RULE = {"left": ":---", "right": "---:", None: "---"}
_STYLE = {"": "{}", "bold": "**{}**", "code": "`{}`"}


def _text(t: Text) -> str:
    return "".join(_STYLE[s.style].format(s.text) for s in t)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(table: Table) -> str:
    lines = [_row(table.headers), "|" + "".join(_RULE[c.align] + "|" for c in table.columns)]
    return "\n".join(lines + [_row(r) for r in table.cells()])


def _items(items: Sequence[Item], depth: int = 0) -> list[str]:
    lines = []
    for item in items:
        lines.append("  " * depth + "- " + _text(item.text))
        lines += _items(item.children, depth + 1)
    return lines


def _block(block: Block) -> str:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Items):
        return "\n".join(_items(block.items))
    if isinstance(block, Paragraph):
        return _text(block.text)
    raise TypeError(f"markdown has no form for {type(block).__name__}")


def markdown_blocks(blocks: Sequence[Block]) -> str:
    """Blocks separated by blank lines; images are left out (report.html shows them)."""
    return "\n\n".join(_block(b) for b in blocks if not isinstance(b, Image))


def _section(section: Section) -> list[str]:
    return ["", f"## {section.title}", "", markdown_blocks(section.blocks)]


def render_markdown(doc: Document) -> str:
    out = [f"# {_text(doc.title)}", "", markdown_blocks(doc.intro)]
    for section in doc.sections:
        out += _section(section)
    return "\n".join(out) + "\n"


def markdown_report(teacher_path: str, target: str, records: Sequence[PassRecord], *,
                    extra_sections: Sequence[Section] = ()) -> str:
    """report.md; extra sections are Section records or (title, markdown) pairs."""
    return render_markdown(compile_document(teacher_path, target, records, extra_sections))
