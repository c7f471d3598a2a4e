"""A clone alone is the whole project: no file in src/, csrc/, docs/, README.md or tests/ refers to the reference
folder that sits beside some checkouts (its specs or fixtures), except the optional upstream-fixture loader in
tests/_paths.py. Format facts the code cites live in docs/format-facts.md."""

from __future__ import annotations

import re

from _paths import ROOT

_S = "sha" + "red"  # spelt in pieces so that this file does not match its own pattern
# a relative path up to the folder, one of its sub-paths, or a pathlib expression that builds it
OUTSIDE = re.compile(r"\.\./" + _S + r"\b"
                     + r"|(?<![\w.-])" + _S + r"/(?:specs|fixtures|DESIGN|UX|STYLE)\b"
                     + r"|parent\s*/\s*[\"']" + _S + r"[\"']")
LOADER = "tests/_paths.py"
TOPS = ("src", "csrc", "docs", "tests")


def _text_files():
    yield ROOT / "README.md"
    for top in TOPS:
        for p in sorted((ROOT / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".pyc"):
                yield p


def test_the_pattern_finds_each_way_of_pointing_outside():
    bad = ["see ../" + _S + "/specs/apr-format.md", "(" + _S + "/specs/gguf-quants.md §3)",
           "ROOT.parent / \"" + _S + "\" / \"fixtures\"", "`" + _S + "/fixtures/apr-qa`"]
    fine = [_S + "_expert.up_proj", "a " + _S + " filesystem", "/" + _S + "/models", "std::" + _S + "_ptr"]
    assert all(OUTSIDE.search(t) for t in bad) and not any(OUTSIDE.search(t) for t in fine)


def test_nothing_but_the_upstream_loader_refers_outside_the_repository():
    hits, seen = [], 0
    for p in _text_files():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary fixtures
        seen += 1
        rel = p.relative_to(ROOT).as_posix()
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) and rel != LOADER:
                hits.append(f"{rel}:{n}: {line.strip()[:120]}")
    assert seen > 100 and not hits, "\n".join(hits)
    assert OUTSIDE.search((ROOT / LOADER).read_text())  # the allowance is not stale: the loader is that place


# A repository path as src/, csrc/ and docs/ name them: rooted at a top folder, not inside another path
# (llama.cpp's own `llama.cpp/src/...` is not ours); placeholders (`<target>`, globs) are not paths.
REPO_PATH = re.compile(r"(?<![\w./-])((?:src|csrc|tests|docs|scripts|benches|\.ci)/[\w./-]*[\w/])")
DOC_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_path_pattern_takes_repository_paths_only():
    text = "see docs/core.md, `tests/quant/`, llama.cpp/src/llama-vocab.cpp and tests/fuzz/corpus/<target>."
    assert [m.group(1) for m in REPO_PATH.finditer(text)] == ["docs/core.md", "tests/quant/", "tests/fuzz/corpus/"]


def test_every_repository_path_named_in_src_csrc_and_docs_exists():
    missing = []
    for top in ("src", "csrc", "docs"):
        for p in sorted((ROOT / top).rglob("*")):
            if not p.is_file() or p.suffix not in (".py", ".h", ".cpp", ".md"):
                continue
            text = p.read_text(encoding="utf-8")
            named = {m.group(1).rstrip(".") for m in REPO_PATH.finditer(text)}
            missing += [f"{p.relative_to(ROOT)}: {n}" for n in sorted(named) if not (ROOT / n).exists()]
            if p.suffix == ".md":  # relative Markdown links
                missing += [f"{p.relative_to(ROOT)}: ({t})" for t in DOC_LINK.findall(text)
                            if not t.startswith(("http://", "https://", "mailto:")) and not (p.parent / t).exists()]
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)
