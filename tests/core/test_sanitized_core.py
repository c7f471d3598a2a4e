"""The kernel tests pass against an AddressSanitizer + UBSan build of the core (scripts/asan-check).

Builds build/asan once (about a minute on 2 cores, incremental afterwards) and runs
tests/core/test_core_{dequant,quant,diff,gather,pair_row_sums,sketch_filter}.py in a subprocess with the sanitized extension.
"""

from _paths import ROOT
import os
import shutil
import subprocess
from pathlib import Path

import pytest



def _have_asan() -> bool:
    gxx = shutil.which("g++")
    if not gxx or not shutil.which("cmake") or not shutil.which("ninja"):
        return False
    lib = subprocess.run([gxx, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return os.path.isabs(lib) and os.path.exists(lib)


@pytest.mark.slow
@pytest.mark.skipif(not _have_asan(), reason="needs g++ with libasan, cmake and ninja")
def test_kernel_tests_pass_under_asan_and_ubsan():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "asan-check")], cwd=ROOT, capture_output=True,
                          text=True, timeout=1500)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    assert "sanitized core:" in proc.stdout and " passed" in proc.stdout, tail
    assert "ERROR: AddressSanitizer" not in tail and "runtime error:" not in tail, tail
