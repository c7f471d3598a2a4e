// Batched decoding for the compare pipeline: selected rows of many same-shape
// tensors in one call (diagnosis samples), so Python never loops over rows, and
// the per-row sums of pairs of such rows (the batched diagnosis screen) without
// writing the rows out. Every source is bounds-checked like the single-tensor
// entry points before the GIL is released; the work units are (source, row)
// pairs spread over threads.
#include "batch.h"

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "buffer.h"
#include "dequant.h"
#include "dtypes.h"
#include "parallel.h"
#include "row_sums.h"

namespace aprqa {

namespace {

struct Source {
    int dtype;
    const uint8_t* base;
};

// The payload of n elements of dtype, checked against the buffer's length.
const uint8_t* checked_payload(const ReadBuffer& rb, int dtype, uint64_t n, size_t index) {
    const size_t need = storage_bytes(dtype, n);
    const ByteSpan s = rb.span();
    if (s.size < need)
        throw std::invalid_argument("sources[" + std::to_string(index) + "]: " + std::to_string(n) +
                                    " elements of " + dtype_or_throw(dtype).name + " need " + std::to_string(need) +
                                    " bytes, buffer holds " + std::to_string(s.size));
    return s.data;
}

// Every source checked for `rows * cols` elements of its dtype (kept alive in `keep`).
std::vector<Source> checked_sources(const std::vector<py::buffer>& sources, const std::vector<int>& dtypes,
                                    uint64_t n, std::vector<ReadBuffer>& keep, const char* what) {
    if (sources.size() != dtypes.size())
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(sources.size()) + " sources but " +
                                    std::to_string(dtypes.size()) + " dtypes");
    keep.reserve(keep.size() + sources.size());
    std::vector<Source> src;
    src.reserve(sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
        require_dequant(dtypes[i]);
        keep.emplace_back(sources[i], "sources");
        src.push_back({dtypes[i], checked_payload(keep.back(), dtypes[i], n, i)});
    }
    return src;
}

// The row indices, each checked against `rows`.
std::pair<const int64_t*, size_t> checked_rows(const ReadBuffer& ri, uint64_t rows) {
    const ByteSpan is = ri.span();
    if (is.size % 8) throw std::invalid_argument("row_index must be int64");
    const size_t k = is.size / 8;
    const int64_t* idx = reinterpret_cast<const int64_t*>(is.data);
    for (size_t j = 0; j < k; ++j)
        if (idx[j] < 0 || (uint64_t)idx[j] >= rows)
            throw std::invalid_argument("row_index[" + std::to_string(j) + "] = " + std::to_string(idx[j]) +
                                        " is outside [0, " + std::to_string(rows) + ")");
    return {idx, k};
}

uint64_t checked_elems(uint64_t rows, uint64_t cols) {
    uint64_t n = 0;
    if (__builtin_mul_overflow(rows, cols, &n)) throw std::invalid_argument("rows*cols overflows 64 bits");
    return n;
}

void gather_rows(const std::vector<py::buffer>& sources, const std::vector<int>& dtypes, uint64_t rows,
                 uint64_t cols, const py::buffer& row_index, const py::buffer& out, int threads) {
    std::vector<ReadBuffer> keep;  // holds every Py_buffer alive while the GIL is released
    const std::vector<Source> src = checked_sources(sources, dtypes, checked_elems(rows, cols), keep, "gather_rows");
    ReadBuffer ri(row_index, "row_index");
    const auto [idx, k] = checked_rows(ri, rows);
    uint64_t items = 0;
    if (__builtin_mul_overflow((uint64_t)(src.size() * k), cols, &items))
        throw std::invalid_argument("output size overflows 64 bits");
    WriteBuffer wb(out, "out");
    float* dst = reinterpret_cast<float*>(wb.span_for_items(items, 4).data);
    const bool simd = simd_enabled();
    const size_t units = src.size() * k;
    // a thread only pays off when it gets at least ~64K elements
    const int nt = items < (1u << 16) ? 1 : resolve_threads(threads);
    py::gil_scoped_release release;
    parallel_slices(units, nt, [&](int, size_t lo, size_t hi) {
        for (size_t u = lo; u < hi; ++u) {
            const Source& s = src[u / k];
            dequant_range(s.dtype, s.base, (uint64_t)idx[u % k] * cols, (size_t)cols, dst + u * cols, simd);
        }
    });
}

// out[i, j] = row_pair_sums of row row_index[j] of a_sources[i] (reference) and of b_sources[i].
void pair_row_sums(const std::vector<py::buffer>& a_sources, const std::vector<int>& a_dtypes,
                   const std::vector<py::buffer>& b_sources, const std::vector<int>& b_dtypes, uint64_t rows,
                   uint64_t cols, const py::buffer& row_index, const py::buffer& out, int threads, int simd_flag) {
    const uint64_t n = checked_elems(rows, cols);
    std::vector<ReadBuffer> keep;
    const std::vector<Source> a = checked_sources(a_sources, a_dtypes, n, keep, "pair_row_sums (a)");
    const std::vector<Source> b = checked_sources(b_sources, b_dtypes, n, keep, "pair_row_sums (b)");
    if (a.size() != b.size())
        throw std::invalid_argument("pair_row_sums: " + std::to_string(a.size()) + " reference sources but " +
                                    std::to_string(b.size()) + " candidate sources");
    ReadBuffer ri(row_index, "row_index");
    const auto [idx, k] = checked_rows(ri, rows);
    uint64_t items = 0;
    if (__builtin_mul_overflow((uint64_t)(a.size() * k), (uint64_t)kRowSums, &items))
        throw std::invalid_argument("output size overflows 64 bits");
    WriteBuffer wb(out, "out");
    double* dst = reinterpret_cast<double*>(wb.span_for_items(items, 8).data);
    const bool simd = simd_flag < 0 ? simd_enabled() : (simd_flag != 0 && simd_enabled());
    const size_t units = a.size() * k;
    const int nt = units * cols < (1u << 16) ? 1 : resolve_threads(threads);
    py::gil_scoped_release release;
    parallel_slices(units, nt, [&](int, size_t lo, size_t hi) {
        std::vector<float> buf(2 * (size_t)cols);  // one row of each side, decoded, reduced while in cache
        float* pa = buf.data();
        float* pb = buf.data() + cols;
        for (size_t u = lo; u < hi; ++u) {
            const size_t i = u / k, j = u % k;
            const uint64_t start = (uint64_t)idx[j] * cols;
            dequant_range(a[i].dtype, a[i].base, start, (size_t)cols, pa, simd);
            dequant_range(b[i].dtype, b[i].base, start, (size_t)cols, pb, simd);
            row_pair_sums(pa, pb, (size_t)cols, dst + u * kRowSums, simd);
        }
    });
}

}  // namespace

void register_gather(py::module_& m) {
    m.def("gather_rows", &gather_rows, py::arg("sources"), py::arg("dtypes"), py::arg("rows"), py::arg("cols"),
          py::arg("row_index"), py::arg("out"), py::arg("threads") = 0,
          "Decode rows row_index (int64) of every source, each a [rows, cols] tensor of its dtype, into "
          "out (float32 [len(sources), len(row_index), cols]).");
    m.def("pair_row_sums", &pair_row_sums, py::arg("a_sources"), py::arg("a_dtypes"), py::arg("b_sources"),
          py::arg("b_dtypes"), py::arg("rows"), py::arg("cols"), py::arg("row_index"), py::arg("out"),
          py::arg("threads") = 0, py::arg("simd") = -1,
          "Per-row sums (sum a^2, d^2, a*d, a, d; d = b - a in float32) of rows row_index (int64) of each pair "
          "(a_sources[i], b_sources[i]), every source a [rows, cols] tensor of its dtype, into out (float64 "
          "[len(a_sources), len(row_index), 5]); simd -1 = the process setting, 0 = the scalar path.");
}

}  // namespace aprqa
