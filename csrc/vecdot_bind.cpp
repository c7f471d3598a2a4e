// Python bindings of the vec_dot kernels (registered from bindings.cpp). Every size is
// checked here, before the GIL is released and the kernel runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "buffer.h"
#include "dtypes.h"
#include "vecdot.h"

namespace py = pybind11;

namespace aprqa {

static uint64_t mul_checked(uint64_t a, uint64_t b, const char* what) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) throw std::invalid_argument(std::string(what) + " overflows 64 bits");
    return r;
}

static int resolve_level(int level) {
    const int best = vecdot_best_level();
    if (level < 0) return best;
    if (level > best)
        throw std::invalid_argument("vec_dot level " + vecdot_level_name(level) + " is not available here (best: " +
                                    vecdot_level_name(best) + ")");
    return level;
}

void register_vecdot(py::module_& m) {
    m.def("vecdot_supported", &vecdot_supported, py::arg("dtype"),
          "Whether matmul_q multiplies rows of this dtype without expanding them.");
    m.def("vecdot_row_multiple", &vecdot_row_multiple, py::arg("dtype"),
          "Row lengths must be a multiple of this for matmul_q.");
    m.def(
        "vecdot_levels",
        [] {
            std::vector<std::string> out;
            for (int l = 0; l <= vecdot_best_level(); ++l) out.push_back(vecdot_level_name(l));
            return out;
        },
        "Kernel levels this CPU runs, scalar first (index = level).");
    m.def(
        "matmul_q",
        [](const py::buffer& w, int dtype, int64_t n_out, int64_t n_in, const py::buffer& x, int64_t tokens,
           const py::buffer& out, int64_t ldo, int threads, int level, bool int8_act) {
            dtype_or_throw(dtype);
            if (!vecdot_supported(dtype))
                throw dtype_error(std::string("matmul_q: unsupported dtype ") + dtype_or_throw(dtype).name);
            if (n_out < 0 || n_in <= 0 || tokens < 0)
                throw std::invalid_argument("matmul_q: bad shape n_out=" + std::to_string(n_out) +
                                            " n_in=" + std::to_string(n_in) + " tokens=" + std::to_string(tokens));
            const int64_t mult = vecdot_row_multiple(dtype);
            if (n_in % mult)
                throw std::invalid_argument("matmul_q (" + std::string(dtype_or_throw(dtype).name) + "): row length " +
                                            std::to_string(n_in) + " is not a multiple of " + std::to_string(mult));
            if (ldo < 0) ldo = n_out;
            if (ldo < n_out) throw std::invalid_argument("matmul_q: ldo < n_out");
            ReadBuffer wb(w, "w");
            const uint64_t row_bytes = payload_bytes(dtype, (uint64_t)n_in);
            const uint64_t need_w = mul_checked(row_bytes, (uint64_t)n_out, "weight size");
            if (wb.span().size < need_w)
                throw std::invalid_argument("matmul_q: weight buffer holds " + std::to_string(wb.span().size) +
                                            " bytes, " + std::to_string(n_out) + " rows of " + std::to_string(n_in) +
                                            " " + dtype_or_throw(dtype).name + " need " + std::to_string(need_w));
            ReadBuffer xb(x, "x");
            const uint64_t need_x = mul_checked(mul_checked((uint64_t)tokens, (uint64_t)n_in, "x size"), 4, "x size");
            if (xb.span().size < need_x)
                throw std::invalid_argument("matmul_q: x holds " + std::to_string(xb.span().size) + " bytes, need " +
                                            std::to_string(need_x));
            WriteBuffer ob(out, "out");
            if (tokens > 0) {
                const uint64_t need_o = mul_checked((uint64_t)(tokens - 1), (uint64_t)ldo, "out size") + (uint64_t)n_out;
                ob.span_for_items(need_o, 4);
            }
            const int lvl = resolve_level(level);
            const uint8_t* wp = wb.span().data;
            const float* xp = reinterpret_cast<const float*>(xb.span().data);
            float* op = reinterpret_cast<float*>(ob.span().data);
            py::gil_scoped_release release;
            vecdot_matmul(dtype, wp, n_out, n_in, xp, tokens, op, ldo, threads, lvl, int8_act);
        },
        py::arg("w"), py::arg("dtype"), py::arg("n_out"), py::arg("n_in"), py::arg("x"), py::arg("tokens"),
        py::arg("out"), py::arg("ldo") = -1, py::arg("threads") = 0, py::arg("level") = -1,
        py::arg("int8_act") = false,
        "out[t, r] = sum_i w[r, i] * x[t, i]: w holds n_out rows of n_in elements of dtype (raw bytes), x is "
        "[tokens, n_in] float32, out float32 with row stride ldo (default n_out). Quantized rows are "
        "dequantized in cache and multiply f32 activations, or with int8_act multiply activations "
        "quantized to int8 blocks of 32 (as ggml does); level -1 = best available.");
    m.def(
        "vecdot_unpack",
        [](const py::buffer& w, int dtype, int64_t rows, int64_t n_in, int level) {
            if (!vecdot_int_supported(dtype))
                throw dtype_error(std::string("vecdot_unpack: unsupported dtype ") + dtype_or_throw(dtype).name);
            if (rows < 0 || n_in <= 0 || n_in % vecdot_row_multiple(dtype))
                throw std::invalid_argument("vecdot_unpack: bad shape");
            ReadBuffer wb(w, "w");
            const uint64_t row_bytes = payload_bytes(dtype, (uint64_t)n_in);
            if (wb.span().size < mul_checked(row_bytes, (uint64_t)rows, "weight size"))
                throw std::invalid_argument("vecdot_unpack: weight buffer too small");
            const int lvl = resolve_level(level);
            const bool has_min = dtype_has_min(dtype);
            py::array_t<int8_t> q({rows, n_in});
            py::array_t<float> s({rows, n_in / VD_GROUP}), mins({rows, has_min ? n_in / VD_GROUP : 0});
            std::vector<uint8_t> aq((size_t)n_in);
            std::vector<float> s8((size_t)(n_in / 4));
            for (int64_t r = 0; r < rows; ++r) {
                unpack_row(dtype, wb.span().data + r * row_bytes, n_in, q.mutable_data() + r * n_in, aq.data(),
                           s8.data(), has_min ? mins.mutable_data() + r * (n_in / VD_GROUP) : nullptr, lvl);
                for (int64_t g = 0; g < n_in / VD_GROUP; ++g) s.mutable_data()[r * (n_in / VD_GROUP) + g] = s8[4 * g];
            }
            return py::make_tuple(q, s, has_min ? py::object(mins) : py::none());
        },
        py::arg("w"), py::arg("dtype"), py::arg("rows"), py::arg("n_in"), py::arg("level") = -1,
        "The canonical form matmul_q multiplies: (int8 q [rows, n], scale per 16 [rows, n/16], min per 16 or "
        "None), with dequantize(w) == s*q - m.");
    m.def(
        "quantize_act",
        [](const py::array_t<float, py::array::c_style | py::array::forcecast>& x) {
            if (x.ndim() != 2 || x.shape(1) % VD_CHUNK)
                throw std::invalid_argument("quantize_act: x must be [tokens, n] with n a multiple of 32");
            ActQ8 a;
            {
                py::gil_scoped_release release;
                quantize_act(x.data(), x.shape(0), x.shape(1), a);
            }
            py::array_t<int8_t> q({x.shape(0), x.shape(1)});
            py::array_t<float> d({x.shape(0), x.shape(1) / VD_CHUNK}), xs({x.shape(0), x.shape(1) / VD_GROUP});
            std::copy(a.q.begin(), a.q.end(), q.mutable_data());
            std::copy(a.d.begin(), a.d.end(), d.mutable_data());
            std::copy(a.xs.begin(), a.xs.end(), xs.mutable_data());
            return py::make_tuple(q, d, xs);
        },
        py::arg("x"), "The activation quantization matmul_q applies: (int8 q [T, n], scales [T, n/32], "
                      "scale*sum per 16 [T, n/16]).");
}

}  // namespace aprqa
