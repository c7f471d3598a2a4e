// Python bindings of the native core. Every kernel binding validates its
// buffers through ReadBuffer/WriteBuffer and releases the GIL while it runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "buffer.h"
#include "dequant.h"
#include "diff.h"
#include "dtypes.h"
#include "batch.h"
#include "parallel.h"
#include "quant.h"
#include "row_sums.h"

namespace py = pybind11;
using namespace aprqa;

namespace aprqa { void register_vecdot(py::module_& m); }  // vecdot_bind.cpp

namespace {

// simd: -1 = process default, 0 = force scalar, 1 = SIMD when available.
bool want_simd(int simd) { return simd < 0 ? simd_enabled() : (simd > 0 && simd_available()); }

uint64_t checked_mul(uint64_t a, uint64_t b, const char* what) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) throw std::invalid_argument(std::string(what) + " overflows 64 bits");
    return r;
}

// Validates that `buf` holds a whole tensor of n elements of dtype (APR q4 may be padded).
ByteSpan tensor_span(const ReadBuffer& rb, int dtype, uint64_t n, const char* what) {
    const size_t need = storage_bytes(dtype, n);
    const ByteSpan s = rb.span();
    if (s.size < need)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) + " elements of " +
                                    dtype_or_throw(dtype).name + " need " + std::to_string(need) +
                                    " bytes, buffer holds " + std::to_string(s.size));
    return {s.data, need};
}

// GGML block types need whole blocks per row (APR q4/q8 and plain types do not).
void check_row_blocks(int dtype, uint64_t row_len, const char* what) {
    const DTypeTraits& t = dtype_or_throw(dtype);
    if (dtype != kAprQ4 && t.block_elems > 1 && row_len % t.block_elems != 0)
        throw std::invalid_argument(std::string(what) + " (" + t.name + "): row length " + std::to_string(row_len) +
                                    " is not a multiple of block size " + std::to_string(t.block_elems));
}

py::dict to_dict(const DiffResult& r) {
    py::dict d;
#define APRQA_X(f) d[#f] = r.f;
    APRQA_DIFF_COUNTS(APRQA_X)
    APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
    d["max_abs"] = r.max_abs;
    d["argmax"] = r.argmax;
    d["min_atol"] = r.min_atol;
    py::list h;
    for (int i = 0; i < kHistBuckets; ++i) h.append(r.hist[i]);
    d["hist"] = h;
    return d;
}

// Every key of to_dict with the rule that merges it across consecutive chunks:
// "count" / "sum" add, "max_abs" is the max (its chunk gives "argmax", offset by the
// chunk's first index), "max" is the max, "hist" adds bucket-wise.
py::list diff_fields() {
    py::list l;
#define APRQA_X(f) l.append(py::make_tuple(#f, "count"));
    APRQA_DIFF_COUNTS(APRQA_X)
#undef APRQA_X
#define APRQA_X(f) l.append(py::make_tuple(#f, "sum"));
    APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
    l.append(py::make_tuple("max_abs", "max_abs"));
    l.append(py::make_tuple("argmax", "argmax"));
    l.append(py::make_tuple("min_atol", "max"));
    l.append(py::make_tuple("hist", "hist"));
    return l;
}

// Strictly increasing int64 indices below `limit` (a RowSample's rows or a side's positions).
std::pair<const int64_t*, size_t> increasing_below(const ReadBuffer& buf, uint64_t limit, const char* what) {
    const ByteSpan sp = buf.span();
    if (sp.size % 8) throw std::invalid_argument(std::string(what) + " must be int64");
    const size_t k = sp.size / 8;
    const int64_t* v = reinterpret_cast<const int64_t*>(sp.data);
    for (size_t j = 0; j < k; ++j) {
        if (v[j] < 0 || (uint64_t)v[j] >= limit)
            throw std::invalid_argument(std::string(what) + "[" + std::to_string(j) + "] = " + std::to_string(v[j]) +
                                        " is outside [0, " + std::to_string(limit) + ")");
        if (j && v[j] <= v[j - 1])
            throw std::invalid_argument(std::string(what) + " must be strictly increasing (" + what + "[" +
                                        std::to_string(j) + "] = " + std::to_string(v[j]) + ")");
    }
    return {v, k};
}

// diff_plain's optional sample (RowSample, diff.h): the rows of the [n / cols, cols] view with their
// float64 [rows, 5] sums, the rows whose sums read b's bytes as another type (each with its type and
// output), and per side lists of positions with their float32 outputs, all checked (outputs zeroed);
// get() is null when none was given.
class SampleArgs {
   public:
    SampleArgs(const py::object& rows, uint64_t cols, const py::object& sums, const py::object& take_a,
               const py::object& taken_a, const py::object& take_b, const py::object& taken_b,
               const py::object& reread_rows, const py::object& reread_dtypes, const py::object& reread_sums,
               int b_dtype, uint64_t n) {
        if (rows.is_none() && sums.is_none() && take_a.is_none() && take_b.is_none() && reread_rows.is_none())
            return;
        if (rows.is_none() || sums.is_none() || take_a.is_none() || taken_a.is_none() || take_b.is_none() ||
            taken_b.is_none() || reread_rows.is_none() || reread_dtypes.is_none() || reread_sums.is_none())
            throw std::invalid_argument("a row sample needs sample_rows, row_sums, take_a, taken_a, take_b, "
                                        "taken_b, reread_rows, reread_dtypes and reread_sums together");
        if (cols == 0 || n % cols)
            throw std::invalid_argument("sample_cols = " + std::to_string(cols) + " does not divide " +
                                        std::to_string(n) + " elements into rows");
        RowSample rs;
        rs.cols = cols;
        rs.sums.push_back(row_sums(rows, sums, -1, n / cols, "sample_rows", "row_sums"));
        const py::sequence rr = reread_rows.cast<py::sequence>(), rd = reread_dtypes.cast<py::sequence>(),
                           ro = reread_sums.cast<py::sequence>();
        if (rr.size() != rd.size() || rr.size() != ro.size())
            throw std::invalid_argument("reread_rows, reread_dtypes and reread_sums differ in length");
        const DTypeTraits& own = dtype_or_throw(b_dtype);
        for (size_t i = 0; i < rr.size(); ++i) {
            const int dt = rd[i].cast<int>();
            require_dequant(dt);
            const DTypeTraits& as = dtype_or_throw(dt);
            if (own.block_elems != 1 || as.block_elems != 1 || own.block_bytes != as.block_bytes)
                throw std::invalid_argument("reread_dtypes[" + std::to_string(i) + "]: b's bytes can be read "
                                            "only as another type of one element per block and as many bytes");
            const std::string at = "[" + std::to_string(i) + "]";
            rs.sums.push_back(row_sums(rr[i], ro[i], dt, n / cols, "reread_rows" + at, "reread_sums" + at));
        }
        rs.a = captures(take_a, taken_a, n, "take_a");
        rs.b = captures(take_b, taken_b, n, "take_b");
        sample_ = std::move(rs);
    }
    const RowSample* get() const { return sample_ ? &*sample_ : nullptr; }

   private:
    RowSums row_sums(const py::handle& rows, const py::handle& out, int dtype, uint64_t n_rows,
                     const std::string& what, const std::string& out_what) {
        const ReadBuffer& r = keep_in_.emplace_back(rows.cast<py::buffer>(), what.c_str());
        const auto [idx, k] = increasing_below(r, n_rows, what.c_str());
        const WriteBuffer& w = keep_out_.emplace_back(out.cast<py::buffer>(), out_what.c_str());
        double* dst = reinterpret_cast<double*>(w.span_for_items((uint64_t)k * kRowSums, 8).data);
        std::fill(dst, dst + k * kRowSums, 0.0);
        return RowSums{idx, k, dtype, dst};
    }
    // One Capture per (positions, output) pair of the two sequences.
    std::vector<Capture> captures(const py::object& at, const py::object& out, uint64_t n, const std::string& what) {
        const py::sequence ats = at.cast<py::sequence>(), outs = out.cast<py::sequence>();
        if (ats.size() != outs.size())
            throw std::invalid_argument(what + ": " + std::to_string(ats.size()) + " position lists but " +
                                        std::to_string(outs.size()) + " outputs");
        std::vector<Capture> got;
        for (size_t i = 0; i < ats.size(); ++i) {
            const std::string name = what + "[" + std::to_string(i) + "]";
            const ReadBuffer& r = keep_in_.emplace_back(ats[i].cast<py::buffer>(), name.c_str());
            const auto [pos, k] = increasing_below(r, n, name.c_str());
            const WriteBuffer& w = keep_out_.emplace_back(outs[i].cast<py::buffer>(), ("taken" + name.substr(4)).c_str());
            got.push_back(Capture{pos, k, reinterpret_cast<float*>(w.span_for_items(k, 4).data)});
        }
        return got;
    }
    std::deque<ReadBuffer> keep_in_;  // every Py_buffer stays alive while the GIL is released
    std::deque<WriteBuffer> keep_out_;
    std::optional<RowSample> sample_;
};

DiffOptions make_opts(double atol, double rtol, int threads, int simd, bool histogram) {
    if (!(atol >= 0) || !(rtol >= 0) || std::isinf(atol) || std::isinf(rtol))
        throw std::invalid_argument("atol and rtol must be finite and >= 0, got atol=" + std::to_string(atol) +
                                    " rtol=" + std::to_string(rtol));
    DiffOptions o;
    o.atol = atol;
    o.rtol = rtol;
    o.threads = resolve_threads(threads);
    o.simd = want_simd(simd);
    o.histogram = histogram;
    return o;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "aprqa native core: bounds-checked dequantization, quantization and diff kernels";
    // Typed exceptions: std::invalid_argument is a ValueError (pybind11's default); an unknown or
    // unsupported dtype is its own subclass so callers map it without matching message text.
    py::register_exception<dtype_error>(m, "DTypeError", PyExc_ValueError);
    register_vecdot(m);

    m.def(
        "dtype_table",
        [] {
            std::vector<std::tuple<int, std::string, uint32_t, uint32_t, bool, bool, bool>> out;
            for (const auto& t : kDTypes)
                out.emplace_back(t.id, t.name, t.block_elems, t.block_bytes, dequant_supported(t.id),
                                 dequant_kernel(t.id).simd != nullptr, quant_supported(t.id));
            return out;
        },
        "List of (id, name, block_elems, block_bytes, dequantizes, has an AVX2 dequantizer, quantizes): "
        "the rows of csrc/dtypes.h the kernels were compiled with.");

    m.def(
        "payload_bytes", [](int dtype, uint64_t n) { return payload_bytes(dtype, n); },
        py::arg("dtype"), py::arg("n"),
        "Exact payload size of n elements of dtype; ValueError on partial blocks or overflow.");

    m.def(
        "checked_span_len",
        [](const py::buffer& buf, int dtype, uint64_t n) {
            ReadBuffer rb(buf, "buffer");
            return rb.span_for(dtype, n).size;
        },
        py::arg("buf"), py::arg("dtype"), py::arg("n"),
        "Validate that buf holds n elements of dtype; returns the bytes the kernel would read.");

    // ---- run-time configuration --------------------------------------------
    m.def("simd_available", &simd_available, "True when the CPU has AVX2+F16C.");
    m.def("simd_enabled", &simd_enabled, "True when kernels currently use the SIMD path.");
    m.def("set_simd", &set_simd, py::arg("on"), "Enable/disable the SIMD path process-wide (False forces _ref).");
    m.def("simd_level", &simd_level, "'avx2' or 'scalar'.");
    m.def(
        "set_threads", [](int n) { default_threads_ref().store(n > 0 ? n : 0); }, py::arg("n"),
        "Default thread count for kernels; 0 = all cores.");
    m.def("get_threads", [] { return resolve_threads(0); }, "Effective default thread count.");
    m.def("dequant_supported", &dequant_supported, py::arg("dtype"));
    m.def("quant_supported", &quant_supported, py::arg("dtype"));
    m.def(
        "storage_bytes", [](int dtype, uint64_t n) { return storage_bytes(dtype, n); }, py::arg("dtype"),
        py::arg("n"), "Bytes of n elements (APR q4: padded to whole blocks); ValueError on partial blocks.");

    // ---- dequantization ----------------------------------------------------
    m.def(
        "dequantize",
        [](const py::buffer& raw, int dtype, uint64_t n_total, const py::buffer& out, uint64_t start,
           int64_t count, int threads, int simd) {
            require_dequant(dtype);
            ReadBuffer rb(raw, "raw");
            const ByteSpan src = tensor_span(rb, dtype, n_total, "raw");
            const uint64_t cnt = count < 0 ? (start <= n_total ? n_total - start : 0) : (uint64_t)count;
            if (start > n_total || cnt > n_total - start)
                throw std::invalid_argument("element range [" + std::to_string(start) + ", " +
                                            std::to_string(start + cnt) + ") is outside the tensor of " +
                                            std::to_string(n_total) + " elements");
            WriteBuffer wb(out, "out");
            float* dst = reinterpret_cast<float*>(wb.span_for_items(cnt, 4).data);
            const bool use_simd = want_simd(simd);
            const int nt = resolve_threads(threads);
            py::gil_scoped_release release;
            const uint64_t unit = 16384;  // elements per work unit (multiple of 256)
            const size_t units = (size_t)((cnt + unit - 1) / unit);
            const int use_nt = cnt < 65536 ? 1 : nt;
            parallel_slices(units, use_nt, [&](int, size_t lo, size_t hi) {
                const uint64_t s = lo * unit, e = std::min<uint64_t>(cnt, hi * unit);
                dequant_range(dtype, src.data, start + s, (size_t)(e - s), dst + s, use_simd);
            });
        },
        py::arg("raw"), py::arg("dtype"), py::arg("n_total"), py::arg("out"), py::arg("start") = 0,
        py::arg("count") = -1, py::arg("threads") = 0, py::arg("simd") = -1,
        "Dequantize elements [start, start+count) of a tensor of n_total elements into out (float32).");

    // ---- quantization ------------------------------------------------------
    m.def(
        "quantize",
        [](const py::buffer& x, int dtype, uint64_t n, const py::buffer& out, int threads) {
            require_quant(dtype);
            ReadBuffer rb(x, "x");
            const ByteSpan src = rb.span_for(kF32, n);
            const size_t need = storage_bytes(dtype, n);
            WriteBuffer wb(out, "out");
            uint8_t* dst = wb.span_for_items(need, 1).data;
            const int nt = resolve_threads(threads);
            py::gil_scoped_release release;
            if (dtype == kAprQ4 && n % 32) std::memset(dst + need - 18, 0, 18);
            quantize(dtype, reinterpret_cast<const float*>(src.data), (size_t)n, dst, nt);
        },
        py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("out"), py::arg("threads") = 0,
        "Quantize n float32 values into out (storage_bytes(dtype, n) bytes).");

    // ---- fused diff --------------------------------------------------------
    m.def("diff_fields", &diff_fields,
          "[(name, merge rule)] of every statistic the diff kernels return, in order.");
    m.def(
        "diff_plain",
        [](const py::buffer& a, int a_dtype, const py::buffer& b, int b_dtype, uint64_t n, double atol,
           double rtol, int threads, int simd, bool histogram, uint64_t chunk_bytes, bool release_a,
           bool release_b, const py::object& sample_rows, uint64_t sample_cols, const py::object& row_sums,
           const py::object& take_a, const py::object& taken_a, const py::object& take_b,
           const py::object& taken_b, const py::object& reread_rows, const py::object& reread_dtypes,
           const py::object& reread_sums) {
            require_dequant(a_dtype);
            require_dequant(b_dtype);
            ReadBuffer ra(a, "a"), rb(b, "b");
            const ByteSpan sa = tensor_span(ra, a_dtype, n, "a"), sb = tensor_span(rb, b_dtype, n, "b");
            DiffOptions o = make_opts(atol, rtol, threads, simd, histogram);
            if (chunk_bytes) o.chunk_elems = chunk_elems_for(a_dtype, b_dtype, n, chunk_bytes);
            const SampleArgs sample(sample_rows, sample_cols, row_sums, take_a, taken_a, take_b, taken_b,
                                    reread_rows, reread_dtypes, reread_sums, b_dtype, n);
            DiffResult r;
            {
                py::gil_scoped_release release;  // for the whole tensor, every chunk
                r = diff_plain({a_dtype, sa.data, sa.size, release_a}, {b_dtype, sb.data, sb.size, release_b}, n, o,
                               sample.get());
            }
            return to_dict(r);
        },
        py::arg("a"), py::arg("a_dtype"), py::arg("b"), py::arg("b_dtype"), py::arg("n"), py::arg("atol") = 0.0,
        py::arg("rtol") = 0.0, py::arg("threads") = 0, py::arg("simd") = -1, py::arg("histogram") = true,
        py::arg("chunk_bytes") = 0, py::arg("release_a") = false, py::arg("release_b") = false,
        py::arg("sample_rows") = py::none(), py::arg("sample_cols") = 0, py::arg("row_sums") = py::none(),
        py::arg("take_a") = py::none(), py::arg("taken_a") = py::none(), py::arg("take_b") = py::none(),
        py::arg("taken_b") = py::none(), py::arg("reread_rows") = py::none(), py::arg("reread_dtypes") = py::none(),
        py::arg("reread_sums") = py::none(),
        "Fused statistics of b - a over n elements (a = reference), walked in chunks of about chunk_bytes "
        "of both payloads (0: one chunk); release_a/_b drop each chunk's pages of that side (read-only "
        "file mappings only). With sample_rows (int64, strictly increasing rows of the [n / sample_cols, "
        "sample_cols] view), their per-row sums (sum a^2, d^2, a*d, a, d; d = b - a in float32) are written "
        "to row_sums (float64 [len(sample_rows), 5]), and the decoded values of a at each list of flat "
        "positions in take_a (int64, each strictly increasing) to the matching float32 array of taken_a, of "
        "b at take_b's to taken_b's; reread_rows[i]'s sums with b's bytes read as reread_dtypes[i] (another type "
        "of one element per block and as many bytes) go to reread_sums[i]. Returns a dict.");
    m.def("diff_chunk_elems", &chunk_elems_for, py::arg("a_dtype"), py::arg("b_dtype"), py::arg("n"),
          py::arg("chunk_bytes"), "Elements per chunk diff_plain uses for chunk_bytes.");
    m.def(
        "release_pages",
        [](const py::buffer& buf) {
            ReadBuffer rb(buf, "buf");
            const ByteSpan s = rb.span();
            release_pages(s.data, s.size);
        },
        py::arg("buf"),
        "madvise(MADV_DONTNEED) of the whole pages inside buf: for read-only file mappings only "
        "(their pages are re-read from the file; anonymous memory would read back as zeros).");

    m.def(
        "diff_transpose",
        [](const py::buffer& a, int a_dtype, const py::buffer& b, int b_dtype, uint64_t rows, uint64_t cols,
           double atol, double rtol, int threads, int simd, bool histogram) {
            require_dequant(a_dtype);
            require_dequant(b_dtype);
            const uint64_t n = checked_mul(rows, cols, "rows*cols");
            check_row_blocks(a_dtype, cols, "a");
            check_row_blocks(b_dtype, rows, "b (transposed)");
            ReadBuffer ra(a, "a"), rb(b, "b");
            const ByteSpan sa = tensor_span(ra, a_dtype, n, "a"), sb = tensor_span(rb, b_dtype, n, "b");
            const DiffOptions o = make_opts(atol, rtol, threads, simd, histogram);
            DiffResult r;
            {
                py::gil_scoped_release release;
                r = diff_transpose({a_dtype, sa.data}, {b_dtype, sb.data}, rows, cols, o);
            }
            return to_dict(r);
        },
        py::arg("a"), py::arg("a_dtype"), py::arg("b"), py::arg("b_dtype"), py::arg("rows"), py::arg("cols"),
        py::arg("atol") = 0.0, py::arg("rtol") = 0.0, py::arg("threads") = 0, py::arg("simd") = -1,
        py::arg("histogram") = true, "Like diff_plain, with b of shape [cols, rows] compared to a.T.");

    m.def(
        "diff_row_perm",
        [](const py::buffer& a, int a_dtype, const py::buffer& b, int b_dtype, uint64_t rows, uint64_t cols,
           const py::buffer& perm, double atol, double rtol, int threads, int simd, bool histogram) {
            require_dequant(a_dtype);
            require_dequant(b_dtype);
            const uint64_t n = checked_mul(rows, cols, "rows*cols");
            check_row_blocks(a_dtype, cols, "a");
            check_row_blocks(b_dtype, cols, "b");
            ReadBuffer ra(a, "a"), rb(b, "b"), rp(perm, "perm");
            const ByteSpan sa = tensor_span(ra, a_dtype, n, "a"), sb = tensor_span(rb, b_dtype, n, "b");
            const ByteSpan sp = rp.span_for(kI64, rows);
            const int64_t* p = reinterpret_cast<const int64_t*>(sp.data);
            std::vector<uint8_t> seen(rows, 0);
            for (uint64_t i = 0; i < rows; ++i) {
                if (p[i] < 0 || (uint64_t)p[i] >= rows)
                    throw std::invalid_argument("perm[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                                                " is outside [0, " + std::to_string(rows) + ")");
                if (seen[p[i]]++)
                    throw std::invalid_argument("perm is not a permutation: row " + std::to_string(p[i]) +
                                                " appears twice (second time at perm[" + std::to_string(i) + "])");
            }
            const DiffOptions o = make_opts(atol, rtol, threads, simd, histogram);
            DiffResult r;
            {
                py::gil_scoped_release release;
                r = diff_row_perm({a_dtype, sa.data}, {b_dtype, sb.data}, rows, cols, p, o);
            }
            return to_dict(r);
        },
        py::arg("a"), py::arg("a_dtype"), py::arg("b"), py::arg("b_dtype"), py::arg("rows"), py::arg("cols"),
        py::arg("perm"), py::arg("atol") = 0.0, py::arg("rtol") = 0.0, py::arg("threads") = 0, py::arg("simd") = -1,
        py::arg("histogram") = true, "Like diff_plain, comparing b row i with a row perm[i] (perm: int64[rows]).");

    m.def(
        "read_probe",
        [](const py::buffer& buf, int threads) {
            ReadBuffer rb(buf, "buf");
            const ByteSpan s = rb.span();
            const int nt = resolve_threads(threads);
            py::gil_scoped_release release;
            return read_probe(s.data, s.size, nt);
        },
        py::arg("buf"), py::arg("threads") = 0, "Sum of all bytes: a read-bandwidth probe for benchmarks.");

    register_gather(m);
    register_sketch_filter(m);
    register_strings(m);
}
