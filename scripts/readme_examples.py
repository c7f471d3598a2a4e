#!/usr/bin/env python3
"""README's CLI examples, regenerated from real runs on the embedded demo model.

Each fenced block after a `<!-- readme-example: NAME -->` line in README.md is the output of the commands of
EXAMPLES[NAME], run in a scratch directory holding `aprqa synth qwen2-tiny qwen2-tiny` (no network, seeded).

    .venv/bin/python scripts/readme_examples.py            # rewrite the blocks
    .venv/bin/python scripts/readme_examples.py --check    # exit 1 when a block is not what aprqa prints now

--check compares after normalising what changes run to run: times, dates, the host, sha256 digests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- readme-example: ([a-z0-9-]+) -->\n```\n(.*?)```\n", re.S | re.M)

# name -> commands (run in order in the scratch directory; every one's output is shown)
EXAMPLES: dict[str, list[str]] = {
    "inspect": ["aprqa inspect qwen2-tiny.q8_0.gguf --tensors 'blk.0.attn_q*'"],
    "convert": ["aprqa convert qwen2-tiny qwen2-tiny.q8_0.gguf --quant q8_0"],
    "compare": ["aprqa compare qwen2-tiny qwen2-tiny.q8_0.gguf"],
    "zoo": ["aprqa run playbooks/zoo --output zoo-out"],
    "dry-run": ["aprqa run playbooks/zoo/qwen2-tiny.playbook.yaml --dry-run"],
}
# commands whose output is shown but which only prepare the scratch directory
SETUP = ["aprqa synth qwen2-tiny qwen2-tiny", "aprqa convert qwen2-tiny qwen2-tiny.q8_0.gguf --quant q8_0"]

_VOLATILE = [
    (re.compile(r"\b\d+(\.\d+)? s\b"), "N s"),                                  # durations
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "DATE"),            # provenance dates
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "SHA"),                                # digests (full or short)
    (re.compile(r"(provenance aprqa \S+ · DATE · )\S+"), r"\1HOST"),            # the host
    (re.compile(r"(· host )\S+"), r"\1HOST"),
    (re.compile(r"\b\d+(\.\d+)? [KMG]B free"), "N free"),                       # free disk space
]


def normalise(text: str) -> str:
    for pat, rep in _VOLATILE:
        text = pat.sub(rep, text)
    return text


def run(cmd: str, cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "400", "PYTHONHASHSEED": "0"}  # no wrapping: the README's block scrolls
    argv = [sys.executable, "-m", "aprqa.cli", *__import__("shlex").split(cmd)[1:]]
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)  # one stream: lines in the order a terminal shows them
    return f"$ {cmd}\n" + p.stdout


def generate() -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="aprqa-readme-") as tmp:
        d = Path(tmp)
        (d / "playbooks").symlink_to(ROOT / "playbooks")
        for cmd in SETUP:
            run(cmd, d)
        return {name: "".join(run(c, d) for c in cmds) for name, cmds in EXAMPLES.items()}


def main() -> int:
    check = "--check" in sys.argv[1:]
    text = README.read_text(encoding="utf-8")
    found = {m.group(1): m.group(2) for m in MARKER.finditer(text)}
    missing = sorted(set(EXAMPLES) - set(found))
    if missing:
        print(f"README.md has no block for {', '.join(missing)} (a `<!-- readme-example: NAME -->` line before it)")
        return 1
    fresh = generate()
    if check:
        stale = [n for n in EXAMPLES if normalise(found[n]) != normalise(fresh[n])]
        for n in stale:
            print(f"--- README block {n!r} is stale; aprqa prints now:\n{fresh[n]}")
        print("README examples: " + (f"{len(stale)} stale (run scripts/readme_examples.py)" if stale else
                                      f"{len(EXAMPLES)} blocks true"))
        return 1 if stale else 0
    new = MARKER.sub(lambda m: f"<!-- readme-example: {m.group(1)} -->\n```\n{fresh.get(m.group(1), m.group(2))}```\n",
                     text)
    README.write_text(new, encoding="utf-8")
    print(f"README examples: {len(EXAMPLES)} blocks written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
