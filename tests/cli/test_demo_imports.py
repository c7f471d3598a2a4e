"""./scripts/demo runs on the base set-up (scripts/setup without --tests): nothing the demo runs imports
torch, transformers or llama_cpp, not even to probe for them — in the CLI process or in any worker it starts."""

from __future__ import annotations

import os
import subprocess
import sys

from _paths import ROOT

HEAVY = ("torch", "transformers", "llama_cpp")

# Loaded by every Python process that has the folder on PYTHONPATH (worker processes included): any request for a
# blocked package is written to the log and fails as if the package were not installed.
SITECUSTOMIZE = f"""\
import os, sys

BLOCKED = {HEAVY!r}


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            with open(os.environ["APRQA_BLOCKED_LOG"], "a") as log:
                log.write(f"{{os.getpid()}} {{name}}\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None  # any other module: the usual finders


sys.meta_path.insert(0, _Blocker())  # first: asked before the path finders, for any module not loaded yet
"""


def test_demo_never_imports_torch_transformers_or_llama_cpp(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "blocked.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "APRQA_BLOCKED_LOG": str(log)}
    # the blocker works: a direct import fails and is logged
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and log.read_text().split()[-1] == "torch", probe.stderr[-500:]
    log.unlink()
    demo = subprocess.run([sys.executable, "-c", "import sys; from aprqa.cli import main; sys.exit(main(sys.argv[1:]))",
                           "run", str(ROOT / "playbooks" / "demo.playbook.yaml"), "--output", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert (tmp_path / "out" / "evidence.json").is_file()
    assert not log.exists(), log.read_text()
