"""What every HTML report page shares: the stylesheet, number formatting, the page frame, and
the one place report files are written (atomically).

Pages are self-contained: inline CSS and SVG, system fonts, no script, no network. The layout
is one column up to 1400 px wide; tables scroll sideways inside their box and charts scale
with the viewBox, so a narrow screen never scrolls the whole page sideways.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any, Iterable

from ..fsio import refuse_input_as_output, write_text_atomic
from ..textsafe import printable

# status -> (css class, icon, word): the icon and word carry the meaning without colour
STATUS = {
    "pass": ("pass", "✓", "pass"),
    "fail": ("fail", "✗", "FAIL"),
    "skip": ("skip", "–", "skipped"),
    "none": ("none", "·", "not planned"),
}

CSS = """
:root{--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--skip:#57606a;--skip-bg:#eaeef2;
--line:#d0d7de;--muted:#57606a;--accent:#0969da;--bg:#fff;--fg:#1f2328}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1400px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:16px 0 6px}
code,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:break-word}
a{color:var(--accent)}code.id,.nw{white-space:nowrap}
.muted{color:var(--muted)}.provenance code{word-break:break-all}.provenance ul{margin:0;padding-left:1.2em}.small{font-size:12px}
.banner{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;padding:12px 16px;border-radius:8px;
border:1px solid var(--line);margin:8px 0 16px}
.banner.pass{background:var(--pass-bg);border-color:var(--pass)}.banner.fail{background:var(--fail-bg);border-color:var(--fail)}
.verdict{font-size:22px;font-weight:700}.banner.pass .verdict{color:var(--pass)}.banner.fail .verdict{color:var(--fail)}
.chips{display:flex;flex-wrap:wrap;gap:6px}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;border:1px solid var(--line);background:#fff;font-size:12px;
white-space:nowrap}
.chip.pass{color:var(--pass);border-color:var(--pass)}.chip.fail{color:var(--fail);border-color:var(--fail)}
.chip.skip{color:var(--skip)}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{font-weight:600;background:#f6f8fa;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.wide{min-width:24em}
.st{font-weight:600}td .st,.cell .st{white-space:nowrap}
.st.pass{color:var(--pass)}.st.fail{color:var(--fail)}.st.skip{color:var(--skip)}
.grid{display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr))}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;min-width:0}
.card h3{margin-top:0}
figure{margin:0}figcaption{font-size:12px;color:var(--muted);margin-top:4px}
svg.chart{width:100%;height:auto;display:block;font-family:system-ui,sans-serif}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:4px 0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;min-width:0;overflow-wrap:anywhere}
details{margin:4px 0}summary{cursor:pointer}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:6px 8px;border-radius:6px;margin:4px 0}
/* the format x quantization matrix */
table.matrix{width:auto;min-width:100%}
table.matrix td{padding:0;border:1px solid #fff}
table.matrix th{text-align:center}
table.matrix th.row{text-align:left}
.cell{display:block;min-width:120px;padding:6px 8px;border-radius:6px;text-decoration:none;color:var(--fg);border:2px solid transparent}
.cell:hover,.cell:focus{border-color:var(--accent)}
.cell.pass{background:var(--pass-bg)}.cell.fail{background:var(--fail-bg)}.cell.skip{background:var(--skip-bg)}
.cell.none{background:#fff;color:var(--muted);border:1px dashed var(--line)}
.cell .st{font-size:14px}.cell .m{display:block;font-size:12px;color:var(--muted);white-space:nowrap}
/* cell detail panels: the targeted one, or the default one while none is targeted */
.panel{display:none;border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin-top:12px}
.panel:target,#all-cells:target~.panel,.panels:not(:has(.panel:target,#all-cells:target)) .panel.default{display:block}
.panel:target{border-color:var(--accent);box-shadow:0 0 0 2px #0969da33}
.gate{border-top:1px solid var(--line);padding-top:8px;margin-top:8px}
.gate:first-of-type{border-top:0;margin-top:0}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;color:var(--muted);margin:6px 0}
@media (max-width:700px){main{padding:10px 10px 32px}h1{font-size:19px}.verdict{font-size:19px}
td.wide{min-width:14em}.scroll>table{min-width:680px}.scroll>table.matrix{min-width:0}.cell{min-width:92px}dl.kv{grid-template-columns:1fr}dl.kv dt{margin-top:4px}}
@media print{.panel{display:block}}
"""


def esc(x: Any) -> str:
    """Text from a file as HTML text: entities for markup, terminal control and bidi characters shown as
    escapes (a U+202E would make the page read differently than the data). Every HTML writer uses it."""
    return html.escape(printable(str(x)))


def num(x: Any, digits: int = 3) -> str:
    """A number for a reader: 3 significant digits, nan/inf spelled out, None as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        return f"{x:.{digits}g}"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, str):
        try:
            return num(float(x), digits) if x.strip().lower() in ("nan", "inf", "-inf") else x
        except ValueError:
            return x
    return str(x)


def status_html(status: str, text: str | None = None) -> str:
    cls, icon, word = STATUS[status]
    return f'<span class="st {cls}">{icon} {esc(text or word)}</span>'


def status_md(status: str, text: str | None = None) -> str:
    _cls, icon, word = STATUS[status]
    return f"{icon} {text or word}"


def chips(items: Iterable[tuple[str, str]]) -> str:
    """``(css class, text)`` pairs as small labels."""
    return '<span class="chips">' + "".join(f'<span class="chip {c}">{esc(t)}</span>' for c, t in items) + "</span>"


def kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """A definition list; values are already HTML."""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def table(head: Iterable[str], rows: Iterable[Iterable[str]], num_cols: Iterable[int] = (),
          cls: str = "") -> str:
    """A table in a sideways-scrolling box; cells are already HTML."""
    nums = set(num_cols)
    th = "".join(f'<th{" class=num" if i in nums else ""}>{esc(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in nums else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<div class="scroll"><table{f" class={cls}" if cls else ""}><tr>{th}</tr>{body}</table></div>'


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


# Markdown punctuation that could start markup inside a line (emphasis, links, code, tables, headings;
# "<" and "&" become entities); CommonMark lets any ASCII punctuation be backslash-escaped.
# "_" inside a word (q8_0) starts no emphasis: only one at a word's edge is escaped.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~#]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def md_cell(x: Any) -> str:
    """Text from a file as Markdown that shows exactly that text: on one line, terminal control and
    bidi characters shown as escapes, ``<``/``>``/``&`` as entities (raw HTML never reaches a
    renderer) and Markdown punctuation backslash-escaped. Every Markdown writer uses it."""
    text = printable(str(x), keep_newlines=False).replace("\\x0a", " ").replace("\\x0d", " ")
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def md_code(x: Any) -> str:
    """Text from a file as a Markdown code span (monospace, no markup inside; ``|`` escaped for tables)."""
    text = printable(str(x), keep_newlines=False).replace("\\x0a", " ").replace("\\x0d", " ")
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or run else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def write_page(path: str | Path, text: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Write a report file (HTML or Markdown) atomically; every report writer goes through here.

    Raises:
        OutputError: ``path`` is one of ``inputs`` (or a directory holding one): never overwritten.
    """
    p = Path(path)
    refuse_input_as_output(p, [i for i in inputs if i])
    write_text_atomic(p, text)
    return p
