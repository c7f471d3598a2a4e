#!/usr/bin/env python3
"""Peak disk of a run or zoo, measured: `aprqa run ARGS...` in a child process while a sampler sums the bytes
of every file under the output folder every 2 ms (temporaries of a conversion being written included).

    .venv/bin/python scripts/measure_disk_peak.py OUT -- playbooks/zoo playbooks/demo.playbook.yaml

prints the peak of OUT/work (converted models), the peak of OUT as a whole, the largest source model's
size (from each model's --dry-run JSON) and their ratio. A sample can miss a state that lasts under 2 ms:
the peak here lasts while a gate compares the models alive (tens of milliseconds for the demo models).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass  # deleted while walking
    return total


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__)
        return 2
    out, args = Path(sys.argv[1]), sys.argv[3:]
    aprqa = [sys.executable, "-m", "aprqa.cli"]
    plans = json.loads(subprocess.run(aprqa + ["run", *args, "--dry-run", "--json", "--output", str(out)],
                                      check=True, capture_output=True, text=True).stdout)
    largest = max(p["disk"]["source_bytes"] for p in plans if p["disk"])
    estimate = max(p["disk"]["peak_bytes"] for p in plans if p["disk"])
    peak = {"work": 0, "all": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["work"] = max(peak["work"], tree_bytes(out / "work"))
            peak["all"] = max(peak["all"], tree_bytes(out))
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.time()
    rc = subprocess.run(aprqa + ["run", *args, "--output", str(out), "-q"], stdout=subprocess.DEVNULL).returncode
    stop.set()
    t.join()
    left = tree_bytes(out / "work")
    print(f"run exit {rc} in {time.time() - t0:.0f} s; {len(plans)} models")
    print(f"peak of converted models (OUT/work): {peak['work'] / 1e6:.1f} MB "
          f"= {peak['work'] / largest:.3f}x the largest source model ({largest / 1e6:.1f} MB); "
          f"dry-run estimate {estimate / 1e6:.1f} MB")
    print(f"peak of OUT (evidence and reports too): {peak['all'] / 1e6:.1f} MB; left in OUT/work: {left} bytes")
    return rc


if __name__ == "__main__":
    sys.exit(main())
