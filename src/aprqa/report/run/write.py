"""Write the run report of evidence records: HTML and/or Markdown, same content.

Used by ``aprqa run`` (report.html + report.md beside the evidence) and ``aprqa report
EVIDENCE --html/--md`` (any evidence file, aprqa's or apr-qa's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...fsio import refuse_input_as_output
from ..page import write_page
from .html import render_run_html
from .markdown import render_run_markdown
from .view import build_run_view


def write_run_report(records: list[dict[str, Any]], html: str | Path | None = None, md: str | Path | None = None,
                     **view: Any) -> list[Path]:
    """Render ``records`` once and write the requested files.

    Args:
        records: evidence records.
        html / md: where to write the HTML page / the Markdown version (None: not written).
        **view: passed to ``build_run_view`` (source, notes, links, seconds, title).
    Returns:
        The paths written.
    """
    out: list[Path] = []
    if html is None and md is None:
        return out
    inputs = [view["source"]] if view.get("source") else []
    for p in (html, md):  # before rendering: the evidence read is never overwritten by its report
        if p is not None:
            refuse_input_as_output(p, inputs)
    v = build_run_view(list(records), **view)
    if html is not None:
        out.append(write_page(html, render_run_html(v), inputs))
    if md is not None:
        out.append(write_page(md, render_run_markdown(v), inputs))
    return out
