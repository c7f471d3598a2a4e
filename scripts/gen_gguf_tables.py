#!/usr/bin/env python3
"""Write src/aprqa/arch/gguf_tables.json from the installed gguf-py (run after upgrading gguf-py).

aprqa reads the snapshot instead of importing gguf-py only while the installed version is the
snapshot's; tests/arch/test_arch_gguf_tables.py checks the snapshot equals the live tables.
"""

from __future__ import annotations

import json
import sys

from aprqa.arch.gguf_tables import SNAPSHOT, live
from aprqa.fsio import write_text_atomic


def main() -> int:
    t = live()
    write_text_atomic(SNAPSHOT, json.dumps(t.to_json(), indent=0, sort_keys=False) + "\n")
    print(f"wrote {SNAPSHOT} (gguf-py {t.version}, {len(t.arch_names)} architectures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
