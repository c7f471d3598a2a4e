"""Terminal rendering of a compare ``Report`` (answer first, evidence next to it) and its
live progress bar. Only report/ prints."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console

from ...textsafe import markup_safe as escape  # also neutralizes control characters
from ..units import human_bytes
from .hints import compare_hints

_GOOD = {"IDENTICAL", "EXACT-CAST", "QUANT-FAITHFUL", "TIED", "WITHIN-TOLERANCE"}


def _g(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def _side(label: str, s: dict[str, Any]) -> str:
    dtypes = ", ".join(f"{k}×{v}" for k, v in sorted(s["dtypes"].items(), key=lambda kv: -kv[1]))
    return (f"{label:<10} {escape(s['path'])}   {s['format']} {s['dialect']} · {dtypes} · {s['tensors']} tensors · "
            f"{human_bytes(s['nbytes'])} · {s['architecture'] or '?'}")


def render_compare(report: Any, console: Console, *, report_path: str | None = None) -> None:
    """Print the summary: sides, metadata, tokenizer, verdict counts, failures worst-first,
    worst passing tensor, minimum passing tolerance, result line."""
    d = report.to_dict()
    console.print(_side("reference", d["reference"]))
    console.print(_side("candidate", d["candidate"]))
    c = d["counts"]
    console.print(f"tensors    {c['pairs_compared']} pairs compared of {c['tensors']} names · "
                  f"{human_bytes(d['bytes_read'])} in {d['seconds']:.2f} s"
                  + (f" · only {escape(d['only'])}" if d["only"] else ""))
    if c["dtype_changes"]:
        console.print("dtypes     " + " · ".join(f"{k} ×{v}" for k, v in c["dtype_changes"].items()))
    md = report.metadata
    if not md.fields and md.note:  # nothing compared is not a match
        console.print(f"metadata   [yellow]NOT COMPARED[/] {escape(md.note)}")
    else:
        status = "[green]MATCH[/]" if md.passed else "[red]DIFFERENT[/]"
        console.print(f"metadata   {status} {md.matched}/{md.compared} "
                      f"({escape(d['reference'].get('config_line', ''))})")
    for f in md.fields:
        if not f.passed or f.note:
            console.print(f"           {f.field}: {f.status} · reference {f.reference!r} · candidate "
                          f"{f.candidate!r}" + (f" · {escape(f.note)}" if f.note else ""))
    tk = report.tokenizer
    if not tk.fields:
        col = "red" if tk.failed_outright else "yellow"
        console.print(f"tokenizer  [{col}]{'FAIL' if tk.failed_outright else 'NOT COMPARED'}[/] {escape(tk.note)}")
    else:
        vocab = next((f for f in tk.fields if f.field == "vocabulary"), None)
        merges = next((f for f in tk.fields if f.field == "merges"), None)
        head = "[green]MATCH[/]" if tk.passed else "[red]DIFFERENT[/]"
        console.print(f"tokenizer  {head} {tk.matched}/{tk.compared}"
                      + (f" · {vocab.reference:,} tokens" if vocab and isinstance(vocab.reference, int) else "")
                      + (f" · {merges.reference:,} merges" if merges and isinstance(merges.reference, int) else ""))
        for f in tk.problems():
            console.print(f"           {f.field}: {f.status} · reference {escape(repr(f.reference))} · candidate "
                          f"{escape(repr(f.candidate))}" + (f" · {escape(f.note)}" if f.note else ""))
    counts = " · ".join(f"[{'green' if k in _GOOD else 'red'}]{k}[/] {v}" for k, v in c["verdicts"].items())
    console.print(f"verdicts   {counts}")
    fails = report.failures()
    for t in fails[:25]:
        console.print(f"  [bold]{escape(t.name)}[/]  [red]{t.verdict.value}[/]"
                      + (f"  ({' · '.join(t.transform)})" if t.transform else ""))
        console.print(f"      {escape(t.detail)}")
    if len(fails) > 25:
        console.print(f"  … and {len(fails) - 25} more failing tensors (see --json / --report)")
    worst = report.worst_passing()
    if worst is not None and worst.stats is not None:
        s = worst.stats
        extra = f"err/noise {_g(worst.noise.ratio)}  " if worst.noise else ""
        console.print(f"           worst passing: {escape(worst.name)}  {worst.candidate_dtype}  {extra}"
                      f"rel-L2 {_g(s.rel_l2)}  cos {_g(s.cosine, 6)}  SQNR {_g(s.sqnr_db)} dB")
    mat = report.min_atol()
    if mat is not None:
        console.print(f"tolerance  minimum passing: atol {_g(mat)} at rtol 0 (profile {d['policy']['profile']}"
                      + (f", {len(d['policy']['overrides'])} override(s)" if d["policy"]["overrides"] else "") + ")")
    for e in d["errors"]:
        console.print(f"[red]error[/]      {escape(e)}")
    if report.outputs is not None:
        o = report.outputs
        console.print(f"outputs    {escape(_outputs_line(o))}   profile {escape(o.profile.name)}: "
                      + ("[green]PASS[/]" if o.passed else "[red]FAIL[/]"))
        for why in getattr(o, "failures", ()) or ():
            console.print(f"           [red]✗[/] {escape(why)}")
        for note in getattr(o, "notes", ()) or ():
            console.print(f"           note: {escape(note)}")
    render_localization(report, console)
    render_corpus(report, console)
    if report.passed:
        scope = "(tensor level; run without --fast for the output-level check)" if report.fast else \
            f"({escape(report.outputs_note)})" if report.outputs is None else ""
        console.print(f"result     [green bold]PASS[/] {scope}   exit 0")
    else:
        n = len(fails)
        what = []
        if n:
            kinds = sorted({t.verdict.value for t in fails})
            what.append(f"{n} tensor{'s' if n != 1 else ''} broken ({', '.join(kinds)})")
        if not md.passed:
            what.append("metadata differs")
        if not tk.passed:
            what.append("tokenizer differs" if tk.fields else "tokenizer missing")
        if d["errors"]:  # a tensor-level "nothing compared", or a check that could not run (never a pass)
            what.append("nothing compared" if not any(t.stats is not None for t in report.tensors)
                        else "a check could not run")
        if report.outputs is not None and not report.outputs.passed:
            what.append("outputs differ")
        console.print(f"result     [red bold]FAIL[/]: {'; '.join(what)}   exit 1")
    if not report.fast and report.outputs is None:
        console.print(f"note       {escape(report.outputs_note)}")
    for hint in compare_hints(d, report.passed):
        console.print(f"[yellow]hint[/]       {escape(hint)}")
    if report_path:
        console.print(f"           report → {escape(report_path)}")


def render_corpus(report: Any, console: Console) -> None:
    """The --corpus KL statistics as llama-perplexity prints them (a measurement, not a verdict)."""
    c = getattr(report, "corpus", None)
    if c is None:
        return
    console.print(f"corpus     {escape(c.corpus)}: {c.positions:,} positions scored in {c.chunks} chunk(s) of "
                  f"{c.ctx} tokens ({c.tokens:,} tokens), candidate run in {escape(c.engine)}")
    rows = [("KL", f"mean {c.kl_mean:.6f} ± {c.kl_mean_stderr:.6f}   median {c.kl_median:.6f}   "
                   f"p99 {c.kl_p99:.6f}   p99.9 {c.kl_p99_9:.6f}   max {c.kl_max:.6f}"),
            ("Δp", f"mean {100 * c.dp_mean:+.3f} ± {100 * c.dp_mean_stderr:.3f} %   RMS {100 * c.dp_rms:.3f} %   "
                   f"p1 {100 * c.dp_percentiles['p1']:+.3f} %   p99 {100 * c.dp_percentiles['p99']:+.3f} %   "
                   f"min {100 * c.dp_min:+.3f} %   max {100 * c.dp_max:+.3f} %"),
            ("same top", f"{100 * c.same_top:.3f} ± {100 * c.same_top_stderr:.3f} %"),
            ("PPL", f"reference {c.ppl_reference:.4f}   candidate {c.ppl_candidate:.4f}   ratio "
                    f"{c.ppl_ratio:.6f} (ln {c.ln_ppl_ratio:+.6f} ± {c.ln_ppl_ratio_stderr:.6f})")]
    for k, v in rows:
        console.print(f"  {k:<9}{escape(v)}")
    for note in c.notes:
        console.print(f"           note: {escape(note)}")


def render_localization(report: Any, console: Console) -> None:
    """The --locate curve in one line per stretch, the first divergent block, and its layer's tensors."""
    loc = report.localization
    if loc is None:
        if report.locate_note:
            console.print(f"locate     [yellow]{escape(report.locate_note)}[/]")
        return
    blocks = loc.blocks
    first = loc.first_bad
    ok = [b for b in blocks if first is None or (b.layer, b.sub_block) != (first.layer, first.sub_block)]
    head = ok if first is None else blocks[: blocks.index(first)]
    if head:
        console.print(f"locate     {escape(head[0].label)} … {escape(head[-1].label)}: rel-err ≤ "
                      f"{_g(max(b.rel_error for b in head))} (limit {_g(loc.threshold)}, profile {loc.profile}, "
                      f"{escape(report.locate_note)})")
    if first is None:
        console.print(f"           [green]no block exceeds the limit[/] (max rel-err {_g(loc.max_rel_error)})")
        return
    console.print(f"           {escape(first.label)} rel-err {_g(first.rel_error)}  ← first divergent block"
                  + (f": model.layers.{first.layer} ({first.sub_block})" if first.layer >= 0 else ""))
    layer = report.divergent_layer_tensors()
    for t in (t for t in layer if not t.passed):
        console.print(f"             {escape(t.name)}  [red]{t.verdict.value}[/]")
    n_ok = sum(1 for t in layer if t.passed)
    if n_ok:
        console.print(f"             {'all' if n_ok == len(layer) else 'the other'} {n_ok} tensors of that layer "
                      "pass at tensor level" + (" (look at activations or the forward config)"
                                                if n_ok == len(layer) else ""))


def _outputs_line(o: Any) -> str:
    """One line of the output-level numbers: ids, KL, top-1, |Δlogit|, greedy agreement."""
    parts = [f"{len(o.token_ids)} prompt ids"]
    tok = o.tokenizer
    if tok is not None:
        parts[0] += ", same ids" if getattr(tok, "passed", True) else ", TOKENIZER-MISMATCH"
    m = o.metrics
    if m is not None:
        parts += [f"mean KL {_g(m.kl_mean)}", f"max KL {_g(m.kl_max)}",
                  f"top-1 {100 * m.top1_agreement:.1f} %", f"max |Δlogit| {_g(m.max_abs_logit_diff)}"]
    g = o.greedy
    if g is not None:
        parts.append(f"greedy {g.agreed}/{g.n_generated} agree" if g.first_divergence is None else
                     f"greedy diverges at {g.first_divergence}" + (" (near-tie)" if g.near_tie else ""))
    engine = getattr(o, "engine", "aprqa")
    if engine != "aprqa":
        parts.insert(0, f"candidate in {engine}")
    return " · ".join(parts)
