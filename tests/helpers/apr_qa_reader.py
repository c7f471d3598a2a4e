"""apr-qa's reader of evidence files as a test oracle: tests/helpers/apr-qa-reader (a Rust program with the field
names and types apr-qa declares, deserialized with serde as ``apr-qa score`` reads ``evidence.json``).

``reader()`` builds it once with Debian's cargo against Debian's vendored crates (/usr/share/cargo/registry,
offline; scripts/setup installs them) into the test cache, keyed by the program's source and the toolchain;
``read(paths)`` runs it and returns one verdict per file: ``{"file", "ok", "error", "records", "parsed",
"record_errors"}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from _paths import TESTS
from llamacpp_pipeline import CACHE, _publish, _tmp

SOURCE = TESTS / "helpers" / "apr-qa-reader"
REGISTRY = Path("/usr/share/cargo/registry")  # Debian's librust-*-dev crates
# Source replacement: every crate comes from Debian's registry, nothing from the network.
CARGO_CONFIG = f"""[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "{REGISTRY}"
[net]
offline = true
"""


class ReaderUnavailable(RuntimeError):
    """No Debian cargo / vendored crates on this machine (scripts/setup installs them)."""


def _toolchain() -> tuple[str, str | None]:
    """(cargo, rustc) — Debian's when installed (the packages scripts/setup installs), else PATH's."""
    cargo = "/usr/bin/cargo" if Path("/usr/bin/cargo").exists() else shutil.which("cargo")
    if cargo is None or not REGISTRY.is_dir():
        raise ReaderUnavailable("cargo or Debian's vendored crates (/usr/share/cargo/registry) are not installed; "
                                "scripts/setup installs cargo librust-serde-derive-dev librust-serde-json-dev "
                                "librust-chrono-dev")
    rustc = "/usr/bin/rustc" if Path("/usr/bin/rustc").exists() else None
    return cargo, rustc


def reader() -> Path:
    """The built reader binary (built on first use, then taken from the cache)."""
    cargo, rustc = _toolchain()
    h = hashlib.sha256(CARGO_CONFIG.encode())
    for p in sorted(SOURCE.rglob("*")):
        if p.is_file() and "target" not in p.relative_to(SOURCE).parts:
            h.update(str(p.relative_to(SOURCE)).encode() + b"\0" + p.read_bytes())
    version = subprocess.run([cargo, "--version"], capture_output=True, text=True).stdout
    h.update(version.encode() + (rustc or "").encode())
    out = CACHE / f"apr-qa-reader-{h.hexdigest()[:16]}"
    binary = out / "apr-qa-reader"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(out)
    build = tmp / "src-tree"
    shutil.copytree(SOURCE, build, ignore=shutil.ignore_patterns("target", "Cargo.lock"))
    (build / ".cargo").mkdir()
    (build / ".cargo" / "config.toml").write_text(CARGO_CONFIG)
    env = {**os.environ, "CARGO_HOME": str(tmp / "cargo-home"), "CARGO_TARGET_DIR": str(tmp / "target")}
    if rustc:
        env["RUSTC"] = rustc
    proc = subprocess.run([cargo, "build", "--release", "--offline", "--quiet"], cwd=build, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building {SOURCE} failed:\n{proc.stderr[-4000:]}")
    shutil.copy2(tmp / "target" / "release" / "apr-qa-reader", tmp / "apr-qa-reader")
    shutil.rmtree(tmp / "target")
    shutil.rmtree(tmp / "cargo-home", ignore_errors=True)
    _publish(tmp, out)
    return binary


def read(paths: list[Path] | tuple[Path, ...]) -> list[dict]:
    """apr-qa's verdict on each evidence file (``ok``: ``Vec<Evidence>`` deserializes)."""
    proc = subprocess.run([str(reader()), *map(str, paths)], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"apr-qa-reader exited {proc.returncode}: {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines()]
