"""Fault injection for playbook tests: the built-in converter, then one GGUF tensor's rows reversed.

Usage (as a playbook converter template):
    {python} tests/helpers/corrupting_converter.py {src} {dst} {format} {quant}

Only GGUF outputs are corrupted (tensor CORRUPT_TENSOR, rows reversed in place on the raw
bytes), so exactly the gates that produce a GGUF from a clean source must be falsified.
"""

from __future__ import annotations

import sys

import numpy as np

CORRUPT_TENSOR = "model.layers.1.mlp.down_proj.weight"


def main(argv: list[str]) -> int:
    src, dst, fmt, quant = argv
    from aprqa.conversion import convert
    from aprqa.formats import open_model

    convert(src, dst, to=fmt, quant=None if quant == "keep" else quant)
    if fmt != "gguf":
        return 0
    with open_model(dst) as m:
        t = m.tensors[CORRUPT_TENSOR]
        offset, nbytes, rows = t.offset, t.nbytes, t.shape[0]
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        raw = np.frombuffer(fh.read(nbytes), dtype=np.uint8).reshape(rows, -1)
        fh.seek(offset)
        fh.write(np.ascontiguousarray(raw[::-1]).tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
