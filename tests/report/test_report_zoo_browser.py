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
