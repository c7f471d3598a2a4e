"""The zoo summary in headless Chromium (Debian's chromium, scripts/setup --tests): it loads clean, shows the
verdict banner and provenance, links every model's run report, and each link opens that model's report."""

from __future__ import annotations

from pathlib import Path

import pytest

from aprqa.playbook.zoo import run_zoo
from helpers.browser import browser_for_tests

PLAYBOOK = """\
name: {name}
version: "1.0.0"
model:
  synthetic: {preset}
  formats: [gguf]
  quantizations: [q8_0]
test_matrix:
  prompts: ["The quick brown fox"]
  max_tokens: 4
"""


@pytest.fixture(scope="module")
def browser():
    yield from browser_for_tests()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("zoo-browser")
    for name, preset in (("zoo-q", "qwen2-tiny"), ("zoo-l", "llama-tiny")):
        (d / f"{name}.playbook.yaml").write_text(PLAYBOOK.format(name=name, preset=preset))
    res = run_zoo([d / "zoo-q.playbook.yaml", d / "zoo-l.playbook.yaml"], d / "out", workers=1)
    assert res.passed, [(m.name, m.error) for m in res.models]
    return d / "out"


_LINKS = """JSON.stringify({
  links: [...document.querySelectorAll('a')].map(a => [a.textContent, a.getAttribute('href'), a.href]),
  banner: document.querySelector('.banner').textContent,
  provenance: (document.querySelector('.provenance') || {}).textContent || '',
  kl: [...document.querySelectorAll('table')].pop().rows[0].textContent,
  wide: document.documentElement.scrollWidth, view: window.innerWidth})"""


def test_zoo_summary_links_every_model_report_and_each_opens(browser, zoo):
    import json

    page = zoo / "zoo-summary.html"
    load = browser.open(page, 1200)
    assert load.errors == [], load.errors
    seen = json.loads(browser.evaluate(_LINKS))
    assert "PASS" in seen["banner"] and "2 of 2 models pass" in seen["banner"]
    assert "aprqa" in seen["provenance"] and "sha256" in seen["provenance"] and "model zoo-q" in seen["provenance"]
    assert "mean KL" in seen["kl"] and "bits/weight" in seen["kl"]
    assert sorted((text, href) for text, href, _url in seen["links"]) == [
        ("zoo-l", "zoo-l/report.html"), ("zoo-q", "zoo-q/report.html")]
    for text, _href, url in seen["links"]:
        target = Path(url.removeprefix("file://"))
        assert target.is_file(), url
        load = browser.open(target, 1200)
        assert load.errors == [], (url, load.errors)
        title = browser.evaluate("document.querySelector('h1').textContent")
        assert title == f"aprqa playbook run: {text}", title
        assert "sha256" in browser.evaluate("document.querySelector('.provenance').textContent")
    narrow = browser.open(page, 390)
    assert narrow.errors == []
    dims = json.loads(browser.evaluate(_LINKS))
    assert dims["wide"] <= dims["view"], dims  # fits a phone: tables scroll in their own boxes


_PROVENANCE = """JSON.stringify({
  head: document.querySelector('.provenance p').innerText,
  inputs: [...document.querySelectorAll('.provenance li')].map(li =>
    [li.firstChild.textContent.trim(), ...[...li.querySelectorAll('code')].map(c => c.textContent)])})"""


def test_every_page_says_who_when_and_which_bytes(browser, zoo, tmp_path, monkeypatch):
    """Zoo summary, each run report and its compare report, and `aprqa compare --report`: the rendered page
    names aprqa's version, the date, the host and the command, and each input with its real sha256."""
    import json
    import re
    import socket

    from aprqa import __version__
    from aprqa.cli import main
    from aprqa.fsio.digest import files_digest

    from aprqa.report.provenance import COMMAND_ENV

    monkeypatch.delenv(COMMAND_ENV, raising=False)  # the CLI sets it for its workers: not beyond this test
    ref, cand, page = tmp_path / "m", tmp_path / "m.q8_0.gguf", tmp_path / "compare.html"
    assert main(["synth", "qwen2-tiny", str(ref)]) == 0
    assert main(["convert", str(ref), str(cand), "--quant", "q8_0", "-q"]) == 0
    main(["compare", str(ref), str(cand), "--report", str(page), "--no-progress"])
    models = {m: files_digest(zoo / m / "model" / preset) for m, preset in (("zoo-q", "qwen2-tiny"),
                                                                              ("zoo-l", "llama-tiny"))}
    pages = {zoo / "zoo-summary.html": {f"model {m}": sha for m, sha in models.items()}, page: {
        "reference": files_digest(ref), "candidate": files_digest(cand)}}
    for m, sha in models.items():
        pb = files_digest(zoo.parent / f"{m}.playbook.yaml")
        for name in ("report.html", "compare-report.html"):
            pages[zoo / m / name] = {"playbook": pb, "model": sha}
    for path, want in pages.items():
        load = browser.open(path, 1200)
        assert load.errors == [], (path, load.errors)
        seen = json.loads(browser.evaluate(_PROVENANCE))
        version, date, host, command = [x.strip() for x in seen["head"].split("·")]
        assert version == f"aprqa {__version__}" and host == f"host {socket.gethostname()}", seen
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", date) and command, seen
        got = {role: sha for role, _path, sha in seen["inputs"]}
        assert got == want, (path, got, want)
        if path == page:
            assert command == f"aprqa compare {ref} {cand} --report {page} --no-progress", command
