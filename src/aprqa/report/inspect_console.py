"""``aprqa inspect`` in the terminal (rich): header lines, config and tokenizer, the tensor table.
Only report/ prints."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from ..textsafe import markup_safe as esc, printable  # names come from files: no markup, no control codes
from .units import human_bytes


def _fmt_cfg_value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _columns(headers: tuple[str, ...], right: tuple[bool, ...], rows: list[tuple[tuple[str, str], ...]]) -> Text:
    """An aligned plain table (two spaces between columns): rich's Table layout costs ~0.1 s per
    few hundred rows, more than opening the model; cells are (text, style)."""
    widths = [max([len(h)] + [len(row[i][0]) for row in rows]) for i, h in enumerate(headers)]
    out = Text()
    for i, h in enumerate(headers):
        out.append((h.rjust(widths[i]) if right[i] else h.ljust(widths[i])) if i < len(headers) - 1 or right[i]
                   else h, style="bold")
        out.append("  " if i < len(headers) - 1 else "\n")
    for row in rows:
        for i, (cell, style) in enumerate(row):
            last = i == len(row) - 1
            text = cell.rjust(widths[i]) if right[i] else (cell if last else cell.ljust(widths[i]))
            out.append(text, style=style or None)
            out.append("\n" if last else "  ")
    out.rstrip()
    return out


def render_inspect(desc: dict[str, Any], console: Console) -> None:
    """Header lines, a config and tokenizer summary, and the tensor table."""
    tot = desc["totals"]
    dtypes = ", ".join(f"{k}×{v}" for k, v in sorted(tot["dtypes"].items()))
    bpw = f"{tot['bits_per_weight']:.2f} bits/weight" if tot["bits_per_weight"] else "—"
    console.print(f"[bold]{esc(desc['path'])}[/]")
    console.print(f"format     {desc['format']} · {esc(desc['dialect'])}"
                  + (f"  ({esc(desc['dialect_note'])})" if desc["dialect_note"] else ""))
    cfg = desc["config"]
    console.print(f"config     {esc(cfg['architecture'] or '—')} · hidden {_fmt_cfg_value(cfg['hidden_size'])} · "
                  f"layers {_fmt_cfg_value(cfg['num_layers'])} · heads {_fmt_cfg_value(cfg['num_heads'])}/"
                  f"{_fmt_cfg_value(cfg['num_kv_heads'])} (head dim {_fmt_cfg_value(cfg['head_dim'])}) · "
                  f"ffn {_fmt_cfg_value(cfg['intermediate_size'])} · vocab {_fmt_cfg_value(cfg['vocab_size'])}")
    console.print(f"           rope {_fmt_cfg_value(cfg['rope_theta'])} {esc(_fmt_cfg_value(cfg['rope_style']))} · "
                  f"rms eps {_fmt_cfg_value(cfg['rms_eps'])} · tied embeddings "
                  f"{_fmt_cfg_value(cfg['tied_embeddings'])} · context {_fmt_cfg_value(cfg['context_length'])}")
    tok = desc["tokenizer"]
    if tok:
        console.print(f"tokenizer  {esc(tok['model_type'])} · {tok['vocab_size']:,} tokens · "
                      f"{tok['merges_count']:,} merges · bos {_fmt_cfg_value(tok['bos_id'])} · "
                      f"eos {_fmt_cfg_value(tok['eos_id'])} · pad {_fmt_cfg_value(tok['pad_id'])} · "
                      f"vocab sha256 {tok['vocab_sha256'][:12]}")
    else:
        console.print("tokenizer  [yellow]none embedded[/]")
    rows = []
    for r in desc["tensors"]:
        name = printable(r["name"], keep_newlines=False)  # Text cells: no markup, but control codes neutralized
        canon = (name, "") if r["known_name"] else (f"{name} (unknown)", "yellow")
        if r["name"] == r["source_name"] and r["known_name"]:
            canon = ("=", "")
        offset = (f"{r['offset']:,} (past EOF)", "red") if r["past_eof"] else (f"{r['offset']:,}", "")
        rows.append(((printable(r["source_name"], keep_newlines=False), ""), canon, (r["dtype"], ""), ("×".join(map(str, r["shape"])) or "scalar", ""),
                     (f"{r['nbytes']:,}", ""), offset))
    console.print(_columns(("source name", "canonical name", "dtype", "shape", "bytes", "offset"),
                           (False, False, False, False, True, True), rows),
                  crop=False, no_wrap=True, overflow="ignore")
    console.print(f"totals     {tot['tensors']} tensors · {tot['elements']:,} elements · "
                  f"{human_bytes(tot['bytes'])} · {bpw} · {dtypes}")
    for w in desc["warnings"]:
        console.print(f"[yellow]warning[/]    {esc(w)}")
