"""Fault injection for playbook tests: the built-in converter, then one square APR tensor transposed in place.

Usage (as a playbook converter template):
    {python} tests/helpers/transposing_converter.py {src} {dst} {format} {quant}

Only APR outputs are changed (tensor PLANTED, a float tensor, transposed on its raw elements), so exactly the
gates that read an APR file made from a clean source must be Falsified, with compare's TRANSPOSED diagnosis.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np

PLANTED = "model.layers.0.self_attn.o_proj.weight"  # [hidden, hidden]: square, no bias, no RoPE row order


def main(argv: list[str]) -> int:
    src, dst, fmt, quant = argv
    from aprqa.conversion import convert
    from aprqa.formats import open_model

    convert(src, dst, to=fmt, quant=None if quant == "keep" else quant)
    if fmt != "apr":
        return 0
    with open_model(dst) as m:
        t = m.tensors[PLANTED]
        offset, nbytes, (rows, cols) = t.offset, t.nbytes, t.shape
        if t.dtype.is_quantized or rows != cols:
            raise SystemExit(f"{PLANTED} is {t.dtype.lname} {t.shape}: this helper transposes square float tensors")
    item = nbytes // (rows * cols)
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        raw = np.frombuffer(fh.read(nbytes), dtype=f"V{item}").reshape(rows, cols)
        fh.seek(offset)
        fh.write(np.ascontiguousarray(raw.T).tobytes())
    # the footer (aprender's: CRC32 of every byte before it) would now name the file corrupt; rewrite it so
    # that only the values are wrong, as a converter with a transposition bug would write them
    with open(dst, "r+b") as fh:
        body = fh.read()
        fh.seek(len(body) - 4)
        fh.write(zlib.crc32(body[:-4]).to_bytes(4, "little"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
