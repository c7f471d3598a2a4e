"""The provenance digest cache (fsio/digest.py): a file's sha256 is looked up by its identity (device, inode,
size, mtime, ctime) and is never returned for bytes the file no longer holds."""

from __future__ import annotations

import hashlib
import json
import os
import time

from aprqa.fsio.digest import DigestCache, files_digest, sha256_file


def _entries(root):
    return sorted(root.rglob("*.json"))


def test_a_hit_is_looked_up_not_read_and_a_rewrite_is_read_again(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"a" * 100_000)
    cache = DigestCache(tmp_path / "cache")
    real = hashlib.sha256(b"a" * 100_000).hexdigest()
    assert sha256_file(f, cache) == real
    (entry,) = _entries(cache.root)
    # an entry whose digest was tampered with is what a lookup returns: proof that a hit does not read the file
    fake = "0" * 64
    d = json.loads(entry.read_text())
    entry.write_text(json.dumps({**d, "sha256": fake}))
    assert sha256_file(f, cache) == fake
    # the same size and the old mtime written back: the ctime moved, so the bytes are read and hashed again
    st = f.stat()
    time.sleep(0.01)
    f.write_bytes(b"b" * 100_000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert sha256_file(f, cache) == hashlib.sha256(b"b" * 100_000).hexdigest()


def test_a_malformed_entry_is_a_miss_and_an_unwritable_cache_is_skipped(tmp_path):
    f = tmp_path / "m.bin"
    f.write_bytes(b"xyz")
    real = hashlib.sha256(b"xyz").hexdigest()
    cache = DigestCache(tmp_path / "cache")
    sha256_file(f, cache)
    ident = json.loads(_entries(cache.root)[0].read_text())["identity"]
    for bad in ("not json", "[1, 2]", json.dumps({"identity": ident, "sha256": "0" * 64, "pad": "x" * 10_000}),
                json.dumps({"identity": "other", "sha256": real}),
                json.dumps({"identity": ident, "sha256": "zz" * 32})):
        _entries(cache.root)[0].write_text(bad)
        assert sha256_file(f, cache) == real
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache's folder would be")
    assert sha256_file(f, DigestCache(blocked)) == real and blocked.read_text().startswith("a file")


def test_a_directory_digest_is_the_same_with_and_without_the_cache(tmp_path, monkeypatch):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    cache = DigestCache(tmp_path / "cache")
    plain = files_digest(d)
    assert files_digest(d, cache) == plain == files_digest(d, cache)
    assert len(_entries(cache.root)) == 2
    monkeypatch.setenv("APRQA_DIGEST_CACHE", "off")
    assert DigestCache.default() is None
    monkeypatch.setenv("APRQA_DIGEST_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DigestCache.default().root == tmp_path / "xdg" / "aprqa" / "sha256"


def test_compare_provenance_names_the_same_digests_from_the_cache(qwen2_dir, tmp_path, monkeypatch, capsys):
    from aprqa.cli import main
    from aprqa.conversion import convert

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cand = tmp_path / "q8.gguf"
    convert(qwen2_dir, cand, quant="q8_0")
    lines = []
    for _ in range(2):
        assert main(["compare", str(qwen2_dir), str(cand), "--fast", "--json", "--no-progress"]) == 0
        lines.append(json.loads(capsys.readouterr().out)["provenance"])
    assert lines[0]["inputs"] == lines[1]["inputs"]
    assert _entries(tmp_path / "xdg" / "aprqa" / "sha256")  # the first run stored them
    monkeypatch.setenv("APRQA_DIGEST_CACHE", "off")
    assert main(["compare", str(qwen2_dir), str(cand), "--fast", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["inputs"] == lines[0]["inputs"]
