// Length-prefixed string tables (GGUF string arrays: u64 little-endian byte length, then
// that many UTF-8 bytes, repeated) scanned in one pass: the offset of every entry, every
// length checked against the end of the buffer, every entry checked to be strict UTF-8
// (what Python's "utf-8" codec accepts: no overlongs, no surrogates, nothing above U+10FFFF).
// A 262k-token vocabulary takes about a millisecond instead of a Python loop per string.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>

#include "batch.h"
#include "buffer.h"

namespace aprqa {

namespace {

// Length of the valid UTF-8 prefix of [p, p+n) (n when all of it is valid).
size_t utf8_valid_prefix(const uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n) {
        // 8 ASCII bytes at a time
        if (i + 8 <= n) {
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        const uint8_t c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;       // no overlongs
            else if (c == 0xED) hi = 0x9F;  // no surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;       // no overlongs
            else if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
        } else return i;
        if (i + len > n) return i;
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < len; ++k)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

// Returns (end, bad): end = position after the last entry; bad = -1, or the index of the
// first entry whose length runs past `limit` or whose bytes are not strict UTF-8 (the
// caller re-reads that entry to report it). offs[i] = position of entry i's length field,
// offs[count] = end.
py::tuple scan_strings(const py::buffer& buf, uint64_t pos, uint64_t limit, uint64_t count, const py::buffer& offs) {
    ReadBuffer rb(buf, "buf");
    const ByteSpan s = rb.span();
    if (limit > s.size || pos > limit)
        throw std::invalid_argument("scan_strings: range [" + std::to_string(pos) + ", " + std::to_string(limit) +
                                    ") is outside the buffer of " + std::to_string(s.size) + " bytes");
    WriteBuffer wb(offs, "offs");
    if (count > UINT64_MAX / 8 - 1) throw std::invalid_argument("scan_strings: count overflows");
    int64_t* out = reinterpret_cast<int64_t*>(wb.span_for_items(count + 1, 8).data);
    int64_t bad = -1;
    {
        py::gil_scoped_release release;
        uint64_t p = pos;
        for (uint64_t i = 0; i < count; ++i) {
            out[i] = (int64_t)p;
            if (limit - p < 8) {
                bad = (int64_t)i;
                break;
            }
            uint64_t n;
            std::memcpy(&n, s.data + p, 8);  // little-endian hosts only (x86-64, aarch64)
            p += 8;
            if (n > limit - p || utf8_valid_prefix(s.data + p, (size_t)n) != n) {
                bad = (int64_t)i;
                break;
            }
            p += n;
        }
        if (bad < 0) out[count] = (int64_t)p;
    }
    return py::make_tuple(bad < 0 ? out[count] : (int64_t)-1, bad);
}

}  // namespace

void register_strings(py::module_& m) {
    m.def("scan_strings", &scan_strings, py::arg("buf"), py::arg("pos"), py::arg("limit"), py::arg("count"),
          py::arg("offs"),
          "Scan count length-prefixed (u64 LE) strict-UTF-8 strings of buf starting at pos, none past limit. "
          "Fills offs (int64[count+1]) with each entry's position and the end; returns (end, bad) where bad is "
          "-1 or the index of the first invalid entry.");
}

}  // namespace aprqa
