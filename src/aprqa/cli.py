"""Command line: parse arguments, make one API call, render. Nothing else.

Exit codes: 0 pass/ok, 1 fidelity failure, 2 bad input or usage.

rich is imported when something is rendered for a person (``_stdout``/``_stderr``/``escape``):
``--json`` output and ``--version`` never load it (start-up, issue 14).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import __version__
from .errors import AprqaError, UsageError, as_aprqa_error
from .fsio import check_output, refuse_input_as_output
from .quantmix import QUANT_CHOICES

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_FAIL, EXIT_INPUT = 0, 1, 2


def _stdout() -> Console:
    from rich.console import Console  # declared lazy import: --json output never loads rich

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:  # piped output: don't squeeze tensor names into 80 columns
        console = Console(highlight=False, soft_wrap=False, width=160)
    return console


def _stderr() -> Console:
    from rich.console import Console  # declared lazy import (see _stdout)

    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=160)
    return console


def escape(text: str) -> str:
    """``text`` with rich markup and terminal control characters neutralized (``textsafe``)."""
    from .textsafe import markup_safe  # imports rich.markup: loaded with the console that prints it

    return markup_safe(text)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .formats import open_model
    from .inspect import describe

    with open_model(args.path, verify=args.verify) as model:
        desc = describe(model, args.tensors)
    if args.json:
        sys.stdout.write(json.dumps(desc, indent=2) + "\n")
    else:
        from .report.console import render_inspect  # rich: only for the console view

        render_inspect(desc, _stdout())
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert
    from .report.console import progress_bar

    err = _stderr()
    done = 0
    with progress_bar(err, enabled=err.is_terminal and not args.quiet and not args.json) as progress:
        def on_tensor(t) -> None:
            nonlocal done
            done += t.nbytes
            if progress is not None:
                progress(done, None, t.name)

        result = convert(args.src, args.dst, to=args.to, quant=args.quant, on_tensor=on_tensor,
                         weights_only=args.weights_only, pre_tokenizer=args.pre_tokenizer)
    changed = sum(1 for _, a, b, _t in result.tensors if a != b)
    transformed = sum(1 for *_x, t in result.tensors if t)
    _stderr().print(f"wrote {result.dst} ({result.fmt}, quant {result.quant}): {len(result.tensors)} tensors, "
                    f"{changed} re-encoded, {transformed} with a layout transform")
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import make_hf_model

    out = make_hf_model(args.out, args.preset, seed=args.seed, dtype=args.dtype)
    _stderr().print(f"wrote {args.preset} (seed {args.seed}, {args.dtype}) → {out}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.output), _stdout())


def cmd_generate(args: argparse.Namespace) -> int:
    from .forward import detokenize, generate, parse_ids, tokenize
    from .formats import open_model

    with open_model(args.model) as model:
        if args.ids is not None:
            ids = parse_ids(args.ids)
        else:
            ids = tokenize(model, args.prompt)
        new = generate(model, ids, args.n, device=args.device)
        try:
            text = detokenize(model, new)
        except AprqaError:  # no tokenizer in the file: ids only
            text = None
    if args.json:
        sys.stdout.write(json.dumps({"prompt_ids": ids, "generated_ids": new, "text": text}) + "\n")
        return EXIT_OK
    out = _stdout()
    out.print(f"prompt ids ({len(ids)}): {ids}")
    out.print(f"generated ids ({len(new)}): {new}")
    if text is not None:
        out.print(f"text: {escape(repr(text))}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare
    from .report.compare_console import render_compare
    from .report.console import progress_bar

    if args.report:
        check_output(Path(args.report))  # a bad --report path fails now, not after the comparison
        refuse_input_as_output(args.report, (args.reference, args.candidate))
    err = _stderr()
    with progress_bar(err, enabled=err.is_terminal and not args.json and not args.no_progress) as progress:
        if args.engine and args.fast:
            raise UsageError(f"--engine {args.engine} runs the output-level check; it cannot be combined with --fast")
        if args.engine == "llama.cpp":
            from .engines.llamacpp import load_llama_cpp

            load_llama_cpp()  # not installed: a usage error (exit 2) before any work, not a failed comparison
        report = compare(args.reference, args.candidate, fast=args.fast, profile=args.profile,
                         tolerances=args.tol or None, only=args.only, threads=args.threads, progress=progress,
                         locate=args.locate, engine=args.engine, corpus=args.corpus, ctx=args.ctx,
                         chunks=args.chunks)
    if args.report:
        from .report import html, markdown

        path = Path(args.report)
        (markdown if path.suffix.lower() in (".md", ".markdown") else html).write_report(report, path)
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        render_compare(report, _stdout(), report_path=args.report)
    return EXIT_OK if report.passed else EXIT_FAIL


def cmd_run(args: argparse.Namespace) -> int:
    from . import cli_zoo
    from .playbook import load_playbook, run_playbook
    from .playbook.evidence import render_line

    out = _stdout()
    if args.dry_run:
        return cli_zoo.cmd_dry_run(args, out, _stderr())
    if len(args.playbook) > 1 or Path(args.playbook[0]).is_dir() or args.executor != "local" or args.model_root:
        return cli_zoo.cmd_zoo(args, out, _stderr())
    args.playbook = args.playbook[0]
    if args.json:  # stdout carries only the JSON summary
        out = _stderr()
    cli_zoo.warn_unknown_keys(load_playbook(args.playbook)[0], Path(args.playbook), _stderr())
    res = run_playbook(args.playbook, output=args.output, model_path=args.model_path, workers=args.workers,
                       fail_fast=args.fail_fast, on_record=lambda r: out.print(escape(render_line(r))))
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    oc = res.outcome_counts()
    gap = f" ([red]{res.missing} planned gate(s) without a record[/])" if res.missing else ""
    out.print(f"{len(res.records)} gates{gap} · " + " · ".join(f"{v} {k}" for k, v in oc.items())
              + f" · {res.seconds:.1f} s · {'[green]PASS[/]' if res.passed else '[red]FAIL[/]'}")
    extra = ", ".join(str(p.name) for p in (res.evidence_jsonl, res.junit, res.summary, res.report,
                                            res.compare_report) if p)
    out.print(f"evidence → {escape(str(res.evidence))} (+ {escape(extra)})")
    skipped = res.not_executed
    if skipped:
        err = _stderr()
        err.print(f"not executed by aprqa ({len(skipped)} Skipped records, not counted as passed):")
        for r in skipped:
            err.print(f"  {escape(r['gate_id'])}: {escape(r['metadata'].get('section', ''))}")
    return EXIT_OK if res.passed else EXIT_FAIL


def cmd_schema(args: argparse.Namespace) -> int:
    from .playbook import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return EXIT_OK


def cmd_verify_evidence(args: argparse.Namespace) -> int:
    from .playbook import verify_evidence

    v = verify_evidence(args.evidence, args.playbook)
    if args.json:
        sys.stdout.write(json.dumps(v.to_dict(), indent=2) + "\n")
    else:
        out = _stdout()
        for p in v.problems:
            out.print(f"[red]✗[/] {escape(p)}")
        out.print(f"{v.records} records · playbook sha256 {v.playbook_sha256[:12]}… · "
                  + ("[green]evidence matches the playbook[/]" if v.passed else "[red]MISMATCH[/]"))
    return EXIT_OK if v.passed else EXIT_FAIL


def cmd_report(args: argparse.Namespace) -> int:
    from .playbook.evidence import load_evidence
    from .report.evidence_report import render_console, summarize
    from .report.run_report import write_run_report

    for p in (args.html, args.md):
        if p:
            refuse_input_as_output(p, (args.evidence,))
    if args.html and args.md and Path(args.html).resolve() == Path(args.md).resolve():
        raise UsageError(f"--html and --md name the same file {args.html}")
    records = load_evidence(args.evidence)
    summary = summarize(records, str(args.evidence))
    for path in write_run_report(records, html=args.html, md=args.md, source=str(args.evidence)):
        _stderr().print(f"wrote {escape(str(path))}")
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
    else:
        render_console(summary, _stdout())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aprqa", description="Conversion-fidelity checks for SafeTensors, GGUF and APR.")
    p.add_argument("--version", action="version", version=f"aprqa {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="show format, config, tokenizer and tensors of a model (headers only)")
    s.add_argument("path", help="model file (.safetensors/.gguf/.apr) or HF directory")
    s.add_argument("--json", action="store_true", help="machine-readable output (docs/json-schema.md)")
    s.add_argument("--tensors", metavar="GLOB", help="only tensors whose name matches GLOB")
    s.add_argument("--verify", action="store_true", help="also verify whole-file checksums (reads every byte)")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("convert", help="reference converter between SafeTensors, GGUF and APR")
    s.add_argument("src", help="source model (file or HF directory)")
    s.add_argument("dst", help="output: .gguf, .apr, .safetensors or a directory (HF layout)")
    s.add_argument("--to", choices=["safetensors", "gguf", "apr"], help="output format (default: from dst)")
    s.add_argument("--quant", choices=QUANT_CHOICES, help="target type of 2-D weights, or a llama.cpp mix "
                   "(q4_k_m, q5_k_m, q3_k_s/m/l, q2_k: docs/quantizations.md); default: keep")
    s.add_argument("--json", action="store_true", help="print what was written per tensor as JSON")
    s.add_argument("--weights-only", action="store_true",
                   help="allow a single .safetensors output file (it cannot carry config and tokenizer)")
    s.add_argument("--pre-tokenizer", metavar="NAME",
                   help="GGUF: tokenizer.ggml.pre to write when aprqa cannot identify it (a llama.cpp name, "
                        "e.g. qwen2, llama-bpe, gpt-2)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("synth", help="write a deterministic tiny model (HF layout) for experiments")
    from .synthetic_presets import preset_names  # the presets alone: the writers load on `synth`

    s.add_argument("preset", choices=preset_names())
    s.add_argument("out", help="output directory")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("demo", help="quick tour: convert the synthetic demo model to 5 targets and compare each "
                                        "(the full demo playbook: aprqa run playbooks/demo.playbook.yaml)")
    s.add_argument("--output", default="demo-quick", help="directory for the generated models")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("generate", help="greedy-generate N tokens with aprqa's own forward pass")
    s.add_argument("model", help="model file (.safetensors/.gguf/.apr) or HF directory")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text (tokenized with the model's own tokenizer)")
    src.add_argument("--ids", help="prompt token ids, comma- or space-separated")
    s.add_argument("-n", type=int, default=16, help="tokens to generate (default 16)")
    s.add_argument("--device", choices=["cpu", "cuda", "torch-cpu"], default="cpu")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_generate)
    s = sub.add_parser("compare", help="is the candidate the same model as the reference? (tensors, config, tokenizer)")
    s.add_argument("reference", help="reference model (file or HF directory)")
    s.add_argument("candidate", help="converted model to check")
    s.add_argument("--fast", action="store_true", help="tensor level only (skip the output-level check)")
    s.add_argument("--locate", action="store_true",
                   help="run both models in lockstep and name the first block whose hidden state diverges")
    s.add_argument("--json", action="store_true", help="machine-readable report on stdout (docs/compare-json.md)")
    s.add_argument("--report", metavar="PATH", help="also write a self-contained report (.html or .md)")
    s.add_argument("--only", metavar="GLOB", help="only tensors whose name matches GLOB")
    s.add_argument("--threads", type=int, metavar="N", help="worker threads (default: all cores)")
    s.add_argument("--profile", default="auto", help="tolerance profile: auto, strict, exact or a target dtype")
    s.add_argument("--tol", action="append", metavar="GLOB=ATOL:RTOL",
                   help="elementwise tolerance override for matching tensors (repeatable)")
    s.add_argument("--engine", choices=["llama.cpp"],
                   help="run the candidate (GGUF) of the output-level check in this engine instead of aprqa's "
                        "forward pass (needs aprqa[llamacpp])")
    s.add_argument("--corpus", metavar="FILE", help="also measure the KL divergence over this UTF-8 text "
                   "(llama-perplexity's statistics; the candidate in --engine when given)")
    s.add_argument("--ctx", type=int, metavar="N", help="tokens per --corpus chunk (default 512 or the model's "
                   "context when shorter)")
    s.add_argument("--chunks", type=int, metavar="N", help="score only the first N --corpus chunks")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_compare)
    s = sub.add_parser("run", help="run a playbook's gates and write apr-qa-shaped evidence")
    s.add_argument("playbook", nargs="+", help="playbook YAML (docs/playbooks.md); several, or a directory of "
                                               "them, run as a zoo (docs/zoo.md)")
    s.add_argument("--output", metavar="DIR", help="evidence and converted models (default aprqa-out/NAME; "
                                                   "a zoo: aprqa-out/zoo)")
    s.add_argument("--dry-run", action="store_true", help="print the plan (conversions, gates, what is Skipped "
                                                          "and why) without a model; run nothing")
    s.add_argument("--model-root", metavar="DIR", help="zoo: one model directory per hf_repo playbook (by name)")
    s.add_argument("--work-dir", metavar="DIR", help="zoo: shared folder for converted models (default OUTPUT/work)")
    s.add_argument("--executor", default="local", metavar="local|ray[=ADDRESS]",
                   help="zoo: a local process pool (default) or a Ray cluster (pip install 'aprqa[ray]')")
    s.add_argument("--gate-workers", type=int, default=1, metavar="N", help="zoo: threads per model (default 1)")
    s.add_argument("--model-path", metavar="DIR", help="local model to use (required for hf_repo playbooks)")
    s.add_argument("--workers", type=int, default=1, metavar="N", help="parallel conversions/gates (a zoo: models "
                                                                    "at once on the local executor; default 1)")
    s.add_argument("--fail-fast", action="store_true", help="stop after the first gate that is not Corroborated")
    s.add_argument("--json", action="store_true", help="print the run summary as JSON")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("schema", help="print the playbook JSON Schema")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("verify-evidence", help="check evidence against a playbook (sha256, thresholds)")
    s.add_argument("evidence", help="evidence.json (or evidence.jsonl)")
    s.add_argument("playbook", help="the playbook the evidence claims to come from")
    s.add_argument("--json", action="store_true", help="machine-readable result")
    s.set_defaults(func=cmd_verify_evidence)

    s = sub.add_parser("report", help="summarize an evidence file (aprqa's or apr-qa's): families, causes, notes")
    s.add_argument("evidence", help="evidence.json (array or apr-qa's {\"evidence\": [...]}) or evidence.jsonl")
    s.add_argument("--md", metavar="PATH", help="also write the run report as Markdown (for PR comments)")
    s.add_argument("--html", metavar="PATH", help="also write the run report as one self-contained HTML page")
    s.add_argument("--json", action="store_true", help="print the summary as JSON instead of the console view")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version exit 0
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except AprqaError as err:
        _stderr().print(f"[red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except (OSError, MemoryError, RecursionError) as err:  # the boundary: typed, one line, exit 2
        _stderr().print(f"[red]error:[/] {escape(str(as_aprqa_error(err)))}", highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        return 130
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 (a native library's panic, a bug: one line, never a traceback)
        _stderr().print(f"[red]error:[/] aprqa crashed: {escape(f'{type(err).__name__}: {err}'[:2000])}",
                        highlight=False, soft_wrap=True)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
