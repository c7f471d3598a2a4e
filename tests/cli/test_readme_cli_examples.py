"""README's CLI examples are what aprqa prints now: scripts/readme_examples.py --check reruns every marked
block on the embedded demo model and compares it (times, dates, host and digests normalised)."""

from __future__ import annotations

import subprocess
import sys

from _paths import ROOT


def test_readme_cli_examples_are_true():
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_examples.py"), "--check"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    assert "5 blocks true" in p.stdout


def test_normalise_hides_only_what_changes_run_to_run():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from readme_examples import normalise
    finally:
        sys.path.pop(0)
    a = "tensors 7.3 MB in 0.58 s\nprovenance aprqa 0.1.0 · 2026-12-07T07:02:31Z · vm · sha256 reference 3bffc2e1b79e"
    b = "tensors 7.3 MB in 4.93 s\nprovenance aprqa 0.1.0 · 2027-01-01T00:00:00Z · ci · sha256 reference 0014a1cc6eea"
    assert normalise(a) == normalise(b)
    assert normalise("mean KL 0.00014") != normalise("mean KL 0.00015")  # measured values are compared
