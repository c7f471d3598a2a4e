"""compare --locate: the first divergent block is named, with that layer's tensor verdicts."""

import json

import numpy as np
import pytest
from rich.console import Console

from aprqa.cli import main
from aprqa.comparison import compare
from aprqa.errors import UsageError
from aprqa.formats import gguf, open_model
from aprqa.formats.model import TensorData
from aprqa.report.compare.console import render_localization

BROKEN = "model.layers.1.self_attn.q_proj.weight"


@pytest.fixture(scope="module")
def broken_gguf(tiny_models, tmp_path_factory):
    """qwen2-tiny as GGUF with layer 1's (square) q_proj data transposed."""
    src = open_model(tiny_models["qwen2-tiny"])
    tensors = []
    for t in src:
        d = TensorData.from_info(t)
        if t.name == BROKEN:
            a = np.frombuffer(t.raw(), np.float32).reshape(t.shape)
            d = TensorData(t.name, t.dtype, t.shape, np.ascontiguousarray(a.T))
        tensors.append(d)
    out = tmp_path_factory.mktemp("locate") / "broken.gguf"
    gguf.write(out, tensors, src.config, src.tokenizer)
    return out


def test_locate_names_the_broken_layer(tiny_models, broken_gguf):
    report = compare(tiny_models["qwen2-tiny"], broken_gguf, fast=False, locate=True)
    loc = report.localization
    assert not report.passed and loc is not None and not loc.passed
    assert (loc.first_bad.layer, loc.first_bad.sub_block) == (1, "attn")
    # everything before the broken block is exact: same f32 weights, same forward pass
    before = loc.blocks[: loc.blocks.index(loc.first_bad)]
    assert before and max(b.rel_error for b in before) == 0.0
    names = {t.name: t.verdict.value for t in report.divergent_layer_tensors()}
    assert names[BROKEN] == "TRANSPOSED" and all(n.startswith("model.layers.1.") for n in names)
    d = report.to_dict()["localization"]
    assert d["first_bad"]["layer"] == 1 and len(d["blocks"]) == len(loc.blocks)


def test_locate_cli_console_html_and_markdown(tiny_models, broken_gguf, tmp_path, capsys):
    html = tmp_path / "r.html"
    assert main(["compare", str(tiny_models["qwen2-tiny"]), str(broken_gguf), "--locate", "--report", str(html)]) == 1
    out = capsys.readouterr().out
    assert "layer 1 attn" in out and "first divergent block: model.layers.1 (attn)" in out
    assert f"{BROKEN}  TRANSPOSED" in out
    page = html.read_text()
    assert 'aria-label="hidden-state relative error per block"' in page and "first divergent block: layer 1 attn" in page
    md = tmp_path / "r.md"
    assert main(["compare", str(tiny_models["qwen2-tiny"]), str(broken_gguf), "--locate", "--report", str(md),
                 "--json"]) == 1
    assert "First divergent block: **layer 1 attn**" in md.read_text()
    assert json.loads(capsys.readouterr().out)["localization"]["first_bad"]["sub_block"] == "attn"


def test_faithful_conversion_locates_nothing(tiny_models, tmp_path):
    from aprqa.conversion import convert

    convert(tiny_models["llama-tiny"], tmp_path / "l.gguf", quant="q8_0")
    report = compare(tiny_models["llama-tiny"], tmp_path / "l.gguf", fast=False, locate=True)
    assert report.passed and report.localization.passed and report.localization.first_bad is None


def test_locate_needs_the_forward_pass(tiny_models):
    with pytest.raises(UsageError, match="cannot be combined with fast=True"):
        compare(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], fast=True, locate=True)


def test_render_localization_directly(tiny_models, broken_gguf):
    report = compare(tiny_models["qwen2-tiny"], broken_gguf, fast=False, locate=True)
    console = Console(record=True, width=200, color_system=None)
    render_localization(report, console)
    text = console.export_text()
    assert "← first divergent block: model.layers.1 (attn)" in text
    assert f"{BROKEN}  TRANSPOSED" in text
    same = compare(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], fast=False, locate=True)
    console = Console(record=True, width=200, color_system=None)
    render_localization(same, console)
    assert "no block exceeds the limit" in console.export_text()
