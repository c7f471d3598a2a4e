"""Fault injection for playbook tests: the built-in converter, then one square APR tensor transposed in place.

Usage (as a playbook converter template):
    {python} tests/helpers/transposing_converter.py {src} {dst} {format} {quant}

Only APR outputs are changed (tensor PLANTED transposed: a float tensor on its raw elements, a quantized one
re-encoded in the file's layout, aprender's row-padded Q4_K included), so exactly the
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
    from aprqa import core
    from aprqa.formats import apr_write, open_model

    convert(src, dst, to=fmt, quant=None if quant == "keep" else quant)
    if fmt != "apr":
        return 0
    with open_model(dst) as m:
        t = m.tensors[PLANTED]
        offset, nbytes, (rows, cols) = t.offset, t.nbytes, t.shape
        if rows != cols:
            raise SystemExit(f"{PLANTED} is {t.shape}: this helper transposes square tensors")
        if t.dtype.is_quantized:  # re-encoded transposed, in the file's own layout (aprender's padded rows too)
            values = core.dequantize(t).reshape(rows, cols)
            payload = apr_write.encode(np.ascontiguousarray(values.T), t.dtype).tobytes()
        else:  # the raw elements moved: exactly the values transposed
            item = nbytes // (rows * cols)
            payload = np.ascontiguousarray(np.frombuffer(t.raw().tobytes(), dtype=f"V{item}").reshape(rows, cols).T
                                           ).tobytes()
    assert len(payload) == nbytes
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        fh.write(payload)
    # the footer (aprender's: CRC32 of every byte before it) would now name the file corrupt; rewrite it so
    # that only the values are wrong, as a converter with a transposition bug would write them
    with open(dst, "r+b") as fh:
        body = fh.read()
        fh.seek(len(body) - 4)
        fh.write(zlib.crc32(body[:-4]).to_bytes(4, "little"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
