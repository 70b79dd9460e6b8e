"""report.html: the compile report (kdcc.reports.compile_report) with its plots, one self-contained file.

The document is rendered straight to HTML (never through markdown), and the
plots (kdcc.reports.figures) are inlined as base64 PNGs after the decisions.
The file goes into the bundle, which must be byte-identical for the same
inputs, so it holds no wall times and nothing that depends on the machine.
"""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any, Callable, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.compile_report import compile_document
from kdcc.reports.document import Block, Document, Image, Item, Items, Paragraph, Section, Table, Text, plain
from kdcc.reports.figures import report_images

__all__ = ["html_report", "render_html", "html_blocks"]

_CSS = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
.l{text-align:left}img{max-width:100%}
pre{background:#f4f4f4;padding:1em;overflow-x:auto}"""
_TAGS = {"": "{}", "bold": "<b>{}</b>", "code": "<code>{}</code>"}


def _text(t: Text) -> str:
    return "".join(_TAGS[s.style].format(html.escape(s.text)) for s in t)


def _cell(tag: str, content: str, align: str | None) -> str:
    cls = ' class="l"' if align == "left" else ""  # right is the stylesheet's default for cells
    return f"<{tag}{cls}>{html.escape(content)}</{tag}>"


def _table(table: Table) -> str:
    aligns = [c.align for c in table.columns]
    head = "".join(_cell("th", h, a) for h, a in zip(table.headers, aligns))
    rows = "".join("<tr>" + "".join(_cell("td", c, a) for c, a in zip(row, aligns)) + "</tr>"
                   for row in table.cells())
    return f"<table><tr>{head}</tr>{rows}</table>"


def _items(items: Sequence[Item]) -> str:
    return "<ul>" + "".join(f"<li>{_text(i.text)}{_items(i.children) if i.children else ''}</li>"
                            for i in items) + "</ul>"


def _block(block: Block) -> str:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Items):
        return _items(block.items)
    if isinstance(block, Paragraph):
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, Image):
        return f'<figure><img alt="{html.escape(block.alt)}" src="data:image/png;base64,{block.png_base64}"></figure>'
    raise TypeError(f"HTML has no form for {type(block).__name__}")


def html_blocks(blocks: Sequence[Block]) -> str:
    return "\n".join(_block(b) for b in blocks)


def render_html(doc: Document) -> str:
    body = [f"<h1>{_text(doc.title)}</h1>", html_blocks(doc.intro)]
    for section in doc.sections:
        body += [f"<h2>{html.escape(section.title)}</h2>", html_blocks(section.blocks)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(plain(doc.title))}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def html_report(teacher_name: str, target: str, records: Sequence[PassRecord], *,
                extra_sections: Sequence[Section] = (),
                extra_figures: dict[str, Callable[[], Any]] | None = None) -> str:
    """report.html; extra sections are Section records or (title, markdown) pairs, extra figures are
    made by the given functions under the report's fixed matplotlib style."""
    doc = compile_document(teacher_name, target, records, extra_sections)
    plots = Section("Plots", report_images(records, extra_figures))
    at = [s.title for s in doc.sections].index("Decisions") + 1
    return render_html(replace(doc, sections=doc.sections[:at] + (plots,) + doc.sections[at:]))
