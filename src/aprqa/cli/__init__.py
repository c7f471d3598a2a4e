# size: the parser and one thin handler per subcommand (each parses, makes one API call, renders); the zoo lives in cli/zoo.py
"""Command line: parse arguments, make one API call, render. Nothing else.

Exit codes: 0 pass/ok, 1 fidelity failure, 2 bad input or usage.

rich is imported when something is rendered for a person (``_stdout``/``_stderr``/``escape``):
``--json`` output and ``--version`` never load it (start-up time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .. import __version__
from ..errors import AprqaError, UsageError, as_aprqa_error
from ..fsio import check_output, refuse_input_as_output
from ..quant.mixes import QUANT_CHOICES
from .help import epilog

if TYPE_CHECKING:
    from rich.console import Console

    from ..report.progress import Progress

EXIT_OK, EXIT_FAIL, EXIT_INPUT = 0, 1, 2


def _piped_width() -> int:
    """Columns of piped output: COLUMNS when set, else 160 (tensor names are not squeezed into 80)."""
    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 160


def _stdout() -> Console:
    from rich.console import Console  # declared lazy import: --json output never loads rich

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=False, width=_piped_width())
    return console


def _stderr() -> Console:
    from rich.console import Console  # declared lazy import (see _stdout)

    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=_piped_width())
    return console


def escape(text: str) -> str:
    """``text`` with rich markup and terminal control characters neutralized (``textsafe``)."""
    from ..textsafe import markup_safe  # imports rich.markup: loaded with the console that prints it

    return markup_safe(text)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..formats import open_model
    from ..report.inspect_view import describe

    with open_model(args.path, verify=args.verify) as model:
        desc = describe(model, args.tensors)
    if args.json:
        sys.stdout.write(json.dumps(desc, indent=2) + "\n")
    else:
        from ..report.inspect_console import render_inspect  # rich: only for the console view

        render_inspect(desc, _stdout())
    return EXIT_OK


def _progress(args: argparse.Namespace) -> Progress:
    """The command's progress display on stderr: off under --json, -q/--quiet and when not a terminal."""
    from ..report.progress import Progress, wanted

    err = _stderr()
    return Progress(err, wanted(err, quiet=args.quiet, json=getattr(args, "json", False)))


def cmd_convert(args: argparse.Namespace) -> int:
    from ..conversion import convert
    from ..formats import open_model

    src = open_model(args.src)  # the total for the bar; convert closes nothing it did not open
    try:
        with _progress(args) as progress:
            bar = progress.bytes_bar("convert", src.total_bytes)
            done = 0

            def on_tensor(t) -> None:
                nonlocal done
                done += t.nbytes
                bar(done, None, t.name)

            result = convert(src, args.dst, to=args.to, quant=args.quant, on_tensor=on_tensor,
                             weights_only=args.weights_only, pre_tokenizer=args.pre_tokenizer)
    finally:
        src.close()
    changed = sum(1 for t in result.tensors if t.source != t.target)
    transformed = sum(1 for t in result.tensors if t.transform)
    _stderr().print(f"wrote {escape(str(result.dst))} ({result.fmt}, quant {result.quant}): "
                    f"{len(result.tensors)} tensors, {changed} re-encoded, {transformed} with a layout transform")
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from ..synth.models import make_hf_model

    out = make_hf_model(args.out, args.preset, seed=args.seed, dtype=args.dtype)
    _stderr().print(f"wrote {args.preset} (seed {args.seed}, {args.dtype}) → {out}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ..synth.demo import run_demo

    return run_demo(Path(args.output), _stdout())


def cmd_generate(args: argparse.Namespace) -> int:
    from ..inference import detokenize, generate, parse_ids, tokenize
    from ..formats import open_model

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
    from ..comparison import compare
    from ..report.compare.console import render_compare

    if args.report:
        check_output(Path(args.report))  # a bad --report path fails now, not after the comparison
        refuse_input_as_output(args.report, (args.reference, args.candidate))
    from ..fsio.digest import DigestCache
    from ..report.provenance import Hashes

    # while compare reads them; an input unchanged since an earlier compare is not hashed again
    hashes = Hashes((("reference", args.reference), ("candidate", args.candidate)), cache=DigestCache.default())
    with _progress(args) as progress:
        if args.engine and args.fast:
            raise UsageError(f"--engine {args.engine} runs the output-level check; it cannot be combined with --fast")
        if args.engine == "llama.cpp":
            from ..engines.llamacpp import load_llama_cpp

            load_llama_cpp()  # not installed: a usage error (exit 2) before any work, not a failed comparison
        report = compare(args.reference, args.candidate, fast=args.fast, profile=args.profile,
                         tolerances=args.tol or None, only=args.only, threads=args.threads,
                         progress=progress.bytes_bar("tensors"),
                         locate=args.locate, engine=args.engine, corpus=args.corpus, ctx=args.ctx,
                         chunks=args.chunks)
    prov = hashes.provenance()
    if args.report:
        from ..report.compare import html, markdown

        path = Path(args.report)
        (markdown if path.suffix.lower() in (".md", ".markdown") else html).write_report(report, path, prov)
    if args.json:
        d = json.loads(report.to_json())
        sys.stdout.write(json.dumps({**d, "provenance": prov.to_dict()}, indent=2) + "\n")
    else:
        render_compare(report, _stdout(), report_path=args.report)
        _stdout().print(f"provenance {escape(prov.line())}", soft_wrap=True)
    return EXIT_OK if report.passed else EXIT_FAIL


def cmd_run(args: argparse.Namespace) -> int:
    from . import zoo as cli_zoo

    return cli_zoo.cmd_run(args, _stdout(), _stderr(), _progress(args))


def cmd_schema(args: argparse.Namespace) -> int:
    from ..playbook import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return EXIT_OK


def cmd_verify_evidence(args: argparse.Namespace) -> int:
    from ..playbook import verify_evidence

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
    from ..playbook.evidence import load_evidence
    from ..report.run.console import render_console
    from ..report.run.evidence import summarize
    from ..report.run.write import write_run_report

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


def _quiet(s: argparse.ArgumentParser) -> None:
    """The one progress switch of every long command (--no-progress: its former name on compare)."""
    s.add_argument("-q", "--quiet", action="store_true",
                   help="no progress display (it is also off under --json and when stderr is not a terminal)")
    s.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aprqa", description="Conversion-fidelity checks for SafeTensors, GGUF and APR.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  aprqa compare hf-dir/ model.q8_0.gguf\n"
                                       "  aprqa run playbooks/demo.playbook.yaml --output demo-out\n"
                                       "  aprqa COMMAND --help     # each command's options and examples\n\n"
                                       "exit codes: 0 pass/ok · 1 a fidelity failure · 2 bad input or usage · "
                                       "130 interrupted")
    p.add_argument("--version", action="version", version=f"aprqa {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:  # every command's --help: examples, exit codes
        return add_parser(name, epilog=epilog(name), formatter_class=argparse.RawDescriptionHelpFormatter,
                          description=kw.get("help"), **kw)


    s = command("inspect", help="show format, config, tokenizer and tensors of a model (headers only)")
    s.add_argument("path", help="model file (.safetensors/.gguf/.apr) or HF directory")
    s.add_argument("--json", action="store_true", help="machine-readable output (docs/json-schema.md)")
    s.add_argument("--tensors", metavar="GLOB", help="only tensors whose name matches GLOB")
    s.add_argument("--verify", action="store_true", help="also verify whole-file checksums (reads every byte)")
    s.set_defaults(func=cmd_inspect)

    s = command("convert", help="reference converter between SafeTensors, GGUF and APR")
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
    _quiet(s)
    s.set_defaults(func=cmd_convert)

    s = command("synth", help="write a deterministic tiny model (HF layout) for experiments")
    from ..synth.presets import preset_names  # the presets alone: the writers load on `synth`

    s.add_argument("preset", choices=preset_names(), help="architecture preset of the tiny model")
    s.add_argument("out", help="output directory")
    s.add_argument("--seed", type=int, default=0, help="weights' random seed (default 0; same seed, same bytes)")
    s.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="weights' type (default f32)")
    s.set_defaults(func=cmd_synth)

    s = command("demo", help="quick tour: convert the synthetic demo model to 5 targets and compare each "
                                        "(the full demo playbook: aprqa run playbooks/demo.playbook.yaml)")
    s.add_argument("--output", default="demo-quick", help="directory for the generated models")
    s.set_defaults(func=cmd_demo)

    s = command("generate", help="greedy-generate N tokens with aprqa's own forward pass")
    s.add_argument("model", help="model file (.safetensors/.gguf/.apr) or HF directory")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text (tokenized with the model's own tokenizer)")
    src.add_argument("--ids", help="prompt token ids, comma- or space-separated")
    s.add_argument("-n", type=int, default=16, help="tokens to generate (default 16)")
    s.add_argument("--device", choices=["cpu", "cuda", "torch-cpu"], default="cpu",
                   help="where the forward pass runs (default cpu: aprqa's numba kernels)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_generate)
    s = command("compare", help="is the candidate the same model as the reference? (tensors, config, tokenizer)")
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
    _quiet(s)
    s.add_argument("--corpus", metavar="FILE", help="also measure the KL divergence over this UTF-8 text "
                   "(llama-perplexity's statistics; the candidate in --engine when given)")
    s.add_argument("--ctx", type=int, metavar="N", help="tokens per --corpus chunk (default 512 or the model's "
                   "context when shorter)")
    s.add_argument("--chunks", type=int, metavar="N", help="score only the first N --corpus chunks")
    s.set_defaults(func=cmd_compare)
    s = command("run", help="run a playbook's gates and write apr-qa-shaped evidence")
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
    s.add_argument("--keep-models", action="store_true",
                   help="keep every converted model in the work folder (default: each is deleted once the gates "
                        "reading it are done; --dry-run prints the peak disk either way)")
    s.add_argument("--json", action="store_true", help="print the run summary as JSON")
    _quiet(s)
    s.set_defaults(func=cmd_run)

    s = command("schema", help="print the playbook JSON Schema")
    s.set_defaults(func=cmd_schema)

    s = command("verify-evidence", help="check evidence against a playbook (sha256, thresholds)")
    s.add_argument("evidence", help="evidence.json (or evidence.jsonl)")
    s.add_argument("playbook", help="the playbook the evidence claims to come from")
    s.add_argument("--json", action="store_true", help="machine-readable result")
    s.set_defaults(func=cmd_verify_evidence)

    s = command("report", help="summarize an evidence file (aprqa's or apr-qa's): families, causes, notes")
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
    from ..report.provenance import set_command  # declared lazy (see cli's imports): pages name this command

    set_command(list(argv) if argv is not None else sys.argv[1:])
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
