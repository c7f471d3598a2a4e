"""The package's import structure: no cycle between modules, no import hidden inside a function.

Read from the source (AST), never by importing: what is checked is what the code says.

* A cycle is one between modules along module-level imports (``if TYPE_CHECKING:`` blocks are
  typing only and excluded) and the declared lazy imports below. Importing ``a.b.c`` from outside
  ``a`` also runs ``a/__init__`` and ``a/b/__init__``: those edges count.
* A function-level import is allowed only for an optional dependency (``OPTIONAL``) or at a
  declared lazy point (``LAZY``, each with its reason: start-up time, issue 14). Dynamic imports
  (``importlib.import_module``) are allowed only where ``DYNAMIC`` says why.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "aprqa"

# Optional dependencies (pyproject's extras and test-only packages): imported where used, so aprqa
# works without them and says how to install them.
OPTIONAL = frozenset({"torch", "transformers", "llama_cpp", "ray", "huggingface_hub", "atheris", "accelerate",
                      "sentencepiece", "jinja2"})

# Declared lazy imports: importing module -> {imported module (or prefix): why it is lazy}.
LAZY: dict[str, dict[str, str]] = {
    "aprqa.pretokenize.guard": {
        "tokenizers": "the tokenizers library loads only when a tokenizer.json is read; `aprqa inspect` of a "
                      "GGUF never does",
        "regex": "the time-bounded regex engine loads only for a tokenizer.json Split regex aprqa does not know",
    },
    "aprqa.cli": {
        "aprqa": "subcommand dispatch: each command imports only what it runs, so `aprqa --version`, "
                 "`inspect` and `compare --fast` never load the forward pass, the playbook or numba",
        "rich": "the consoles are made when something is printed for a person: `inspect --json` and "
                "`--version` never load rich (tests/cli/test_startup.py)",
    },
    "aprqa.formats.model": {
        "numpy": "headers are parsed from a memoryview of the map; numpy loads when a tensor's bytes are "
                 "touched (raw(), a writer's payload), so `aprqa inspect` never imports it",
    },
    "aprqa.formats.safetensors": {
        "numpy": "the writer's payload buffers; reading a file needs none",
        "safetensors": "the safetensors package is the writer; reading parses the header here",
    },
    "aprqa.arch.rope": {
        "numpy": "the permutation index arrays; the registry around them is read by `aprqa inspect`, "
                 "which needs no numpy",
    },
    "aprqa.arch.gguf_tables": {
        "gguf": "gguf-py is read live only when its installed version is not the shipped snapshot's; "
                "the snapshot keeps `inspect`/`compare` from importing it",
    },
    "aprqa.formats.apr_write": {
        "numpy": "payload encoding of a write; the APR reader imports this module (WRITABLE) and needs none",
        "aprqa.core": "the quantizer encodes a payload only when an APR is written; `aprqa inspect` of an APR "
                      "never loads the native core",
    },
    "aprqa.formats.gguf_write": {
        "gguf": "gguf-py's GGUFWriter loads only when a GGUF is written; what it can lay out comes from "
                "the gguf_tables snapshot, so opening or comparing files never imports it",
        "numpy": "payload buffers of a write; the GGUF reader imports this module (WRITABLE) and needs none",
        "aprqa.formats.gguf_vocab": "the tokenizer preparation (pre-tokenizer tables) is needed only to "
                                    "write; `aprqa inspect` of a GGUF never loads it",
    },
    "aprqa.comparison": {
        "aprqa.comparison.corpus": "the corpus KL runs the forward pass (numba); `compare` without --corpus "
                                "never loads it",
        "aprqa.comparison.output_checks": "the output-level check imports the forward pass (numba); "
                                       "compare(fast=True) never needs it",
    },
    "aprqa.textsafe": {
        "rich.markup": "only console text needs markup escaping; the pages' ``printable`` and "
                       "`inspect --json` (provenance) load no rich",
    },
    "aprqa.comparison.encoder_outputs": {
        "aprqa.engines.llamacpp": "llama.cpp runs the encoder only under --engine llama.cpp; the check in aprqa's "
                                  "own forward never loads it",
    },
    "aprqa.quant.mixes": {
        "aprqa.arch": "a mix's rules read GGUF names from the family registry only when a mix is applied; the CLI "
                      "imports this module for QUANT_CHOICES alone",
    },
    "aprqa.comparison.corpus": {
        "aprqa.engines.llamacpp": "llama.cpp scores the candidate only under --engine llama.cpp; the corpus KL "
                                  "in aprqa's own forward never loads it",
    },
    "aprqa.comparison.tokenizer_check": {
        "aprqa.inference.tokenizer": "the tokenizer rebuild lives in the forward package (which loads numba); "
                                   "only the tokenizer's behaviour check needs it, not the tensor level",
    },
    "aprqa.pretokenize.splits": {
        "tokenizers": "the tokenizers library loads only when a pre-tokenizer is built; identifying one by "
                      "name or hash (inspect, the GGUF writer) needs none",
    },
    "aprqa.report.progress": {
        "rich.progress": "the progress display loads only when it is drawn (a TTY); --json, --quiet and "
                         "piped runs never draw one",
        "rich.text": "the clock column's text: only when a display is drawn",
    },
}

# Dynamic imports: module -> why.
DYNAMIC: dict[str, str] = {
    "aprqa": "PEP 562 lazy exports: `import aprqa` loads no numpy (tests/cli/test_startup.py)",
    "aprqa.formats": "format_module(name): a format's reader/writer loads when that format is opened",
}

@dataclass(frozen=True)
class Import:
    module: str     # importing module
    target: str     # imported module (the most specific one that exists, else the dotted name)
    line: int
    function: str | None  # enclosing function, None at module level


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (p, is_pkg)
    return out


MODULES = _modules()
NATIVE = {"aprqa._core"}  # the compiled core: a module, not a name of the package


def _is_module(name: str) -> bool:
    return name in MODULES or name in NATIVE


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        parent = ".".join(base + ([node.module] if node.module else []))
    else:
        parent = node.module or ""
    found = [f"{parent}.{a.name}" if _is_module(f"{parent}.{a.name}") else parent for a in node.names]
    return list(dict.fromkeys(found))  # `from m import a, b` is one import of m


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(module: str, is_pkg: bool, body: list[ast.stmt], function: str | None, out: list[Import]) -> None:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.extend(Import(module, t, node.lineno, function) for t in _targets(module, is_pkg, node))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            _walk(module, is_pkg, node.orelse, function, out)  # the `if` branch is typing only
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _walk(module, is_pkg, node.body, function or node.name, out)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    _walk(module, is_pkg, [n for n in inner if isinstance(n, ast.AST)], function, out)


def _imports() -> list[Import]:
    out: list[Import] = []
    for module, (path, is_pkg) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _walk(module, is_pkg, tree.body, None, out)
    return out


IMPORTS = _imports()



def _lazy_reason(imp: Import) -> str | None:
    for prefix, why in LAZY.get(imp.module, {}).items():
        if imp.target == prefix or imp.target.startswith(prefix + "."):
            return why
    return None


def _edges(imp: Import) -> list[str]:
    """Modules whose code runs because of this import: the target and the packages above it,
    except the importer's own packages (already being imported when it runs)."""
    own = {".".join(imp.module.split(".")[:i]) for i in range(1, imp.module.count(".") + 1)}
    parts = imp.target.split(".")
    names = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [n for n in names if n in MODULES and n != imp.module and (n not in own or n == imp.target)]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if imp.function is not None and _lazy_reason(imp) is None:
            continue  # undeclared function-level imports fail test_no_function_level_imports instead
        graph[imp.module].update(_edges(imp))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_package():
    # a scan that found nothing would pass both tests below vacuously
    assert {"aprqa", "aprqa.cli", "aprqa.comparison", "aprqa.inference", "aprqa.formats.gguf"} <= set(MODULES)
    assert sum(1 for i in IMPORTS if i.function is None) > 200
    graph = import_graph()
    assert "aprqa.comparison.results" in graph["aprqa.comparison"]
    assert "aprqa.formats" in graph["aprqa.conversion"]
    assert "aprqa.inference" not in graph["aprqa.comparison.results"]  # typing-only import excluded


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (break them; share types through a leaf module):\n" + "\n".join(
        " -> ".join(c) for c in found)


def test_no_function_level_imports():
    bad = [f"{i.module}:{i.line} {i.function}() imports {i.target}" for i in IMPORTS
           if i.function is not None
           and i.target.split(".")[0] not in OPTIONAL and _lazy_reason(i) is None]
    assert not bad, ("function-level imports outside optional dependencies and the declared lazy points "
                     "(move them to the top of the module, or declare them in LAZY with the reason):\n"
                     + "\n".join(bad))


def test_dynamic_imports_only_where_declared():
    bad = []
    for module, (path, _) in MODULES.items():
        if module in DYNAMIC:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if name in ("import_module", "__import__"):
                    bad.append(f"{module}:{node.lineno}")
    assert not bad, "dynamic imports outside DYNAMIC: " + ", ".join(bad)


def test_every_declared_lazy_point_is_used():
    # an allowlist entry nobody uses is a stale exception: delete it
    for module, entries in LAZY.items():
        for prefix in entries:
            assert any(i.module == module and i.function is not None
                       and (i.target == prefix or i.target.startswith(prefix + ".")) for i in IMPORTS), (module, prefix)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_cycle_finder(graph, expected):
    assert cycles(graph) == expected


def test_imports_of_a_submodule_run_its_packages():
    imp = Import("aprqa.comparison.results", "aprqa.inference.metrics", 1, None)
    assert _edges(imp) == ["aprqa.inference", "aprqa.inference.metrics"]
    own = Import("aprqa.comparison.verdicts", "aprqa.comparison.results", 1, None)
    assert _edges(own) == ["aprqa.comparison.results"]  # its own package is already being imported
