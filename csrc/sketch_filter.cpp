// The batched SWAPPED screen's filter (comparison/signature_index.py, SignatureIndex.may_keep): for
// every (query, reference) pair, whether the search's sketch filter could keep the reference. The
// Python side proves the bound; this file only evaluates it for q × N pairs without temporaries.
//
// For query i and reference j, with dot = Σ_c sb_i[c]·s_j[c] in float32 (fused multiply-adds in
// order c = 0..63, the same in both paths, so the AVX2 path equals the scalar one bit for bit):
//   low2  = (sk2c_j + sb2c_i) − 2·dot                      (float64)
//   reach = (radius_i·root_energy_j + reach0_i) + slack_j   (float64)
//   may_keep = !(low2 > reach²)                            (NaN anywhere: may keep)
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "batch.h"
#include "buffer.h"
#include "dequant.h"
#include "parallel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define APRQA_FILTER_AVX2 1
#endif

namespace aprqa {

namespace {

constexpr int kDim = 64;  // signature_index.SKETCH_DIM

struct Refs {
    const float* sketch_t;     // [kDim, n]: reference sketches, transposed (coordinate-major)
    const double* sk2c;        // [n]
    const double* root_energy; // [n]
    const double* slack;       // [n]
    size_t n;
};

struct Query {
    const float* sb;  // [kDim]
    double sb2c, radius, reach0;
};

inline uint8_t decide(const Refs& r, const Query& q, size_t j, float dot) {
    const double low2 = (r.sk2c[j] + q.sb2c) - 2.0 * (double)dot;
    const double reach = (q.radius * r.root_energy[j] + q.reach0) + r.slack[j];
    return !(low2 > reach * reach);
}

void filter_scalar(const Refs& r, const Query& q, size_t j0, uint8_t* out) {
    for (size_t j = j0; j < r.n; ++j) {
        float dot = 0.0f;
        for (int c = 0; c < kDim; ++c) dot = std::fmaf(q.sb[c], r.sketch_t[(size_t)c * r.n + j], dot);
        out[j] = decide(r, q, j, dot);
    }
}

#ifdef APRQA_FILTER_AVX2
// The decisions of references j..j+7 from their eight dot products.
__attribute__((target("avx2,fma"))) inline void decide8(const Refs& r, const Query& q, size_t j, __m256 dot8,
                                                        uint8_t* out) {
    const __m256d two = _mm256_set1_pd(2.0), sb2c = _mm256_set1_pd(q.sb2c), radius = _mm256_set1_pd(q.radius),
                  reach0 = _mm256_set1_pd(q.reach0);
    const __m256d dots[2] = {_mm256_cvtps_pd(_mm256_castps256_ps128(dot8)),
                             _mm256_cvtps_pd(_mm256_extractf128_ps(dot8, 1))};
    for (int h = 0; h < 2; ++h) {
        const size_t jj = j + 4 * (size_t)h;
        const __m256d low2 =
            _mm256_sub_pd(_mm256_add_pd(_mm256_loadu_pd(r.sk2c + jj), sb2c), _mm256_mul_pd(two, dots[h]));
        const __m256d reach = _mm256_add_pd(
            _mm256_add_pd(_mm256_mul_pd(radius, _mm256_loadu_pd(r.root_energy + jj)), reach0),
            _mm256_loadu_pd(r.slack + jj));
        const int far = _mm256_movemask_pd(_mm256_cmp_pd(low2, _mm256_mul_pd(reach, reach), _CMP_GT_OQ));
        for (int l = 0; l < 4; ++l) out[jj + l] = !((far >> l) & 1);
    }
}

__attribute__((target("avx2,fma"))) void filter_avx2(const Refs& r, const Query& q, uint8_t* out) {
    size_t j = 0;
    // four blocks of eight references at once: four independent chains of fused multiply-adds
    for (; j + 32 <= r.n; j += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < kDim; ++c) {
            const __m256 x = _mm256_set1_ps(q.sb[c]);
            const float* row = r.sketch_t + (size_t)c * r.n + j;
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(row), a0);
            a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(row + 8), a1);
            a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(row + 16), a2);
            a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(row + 24), a3);
        }
        decide8(r, q, j, a0, out);
        decide8(r, q, j + 8, a1, out);
        decide8(r, q, j + 16, a2, out);
        decide8(r, q, j + 24, a3, out);
    }
    for (; j + 8 <= r.n; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int c = 0; c < kDim; ++c)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(q.sb[c]), _mm256_loadu_ps(r.sketch_t + (size_t)c * r.n + j), acc);
        decide8(r, q, j, acc, out);
    }
    filter_scalar(r, q, j, out);
}
#endif

template <typename T>
const T* items(const ReadBuffer& b, uint64_t count, const char* what) {
    const ByteSpan s = b.span();
    if (s.size < count * sizeof(T))
        throw std::invalid_argument(std::string("sketch_filter: ") + what + " holds " + std::to_string(s.size) +
                                    " bytes, needs " + std::to_string(count * sizeof(T)));
    return reinterpret_cast<const T*>(s.data);
}

void sketch_filter(const py::buffer& sketch_t, const py::buffer& sk2c, const py::buffer& root_energy,
                   const py::buffer& slack, uint64_t n_ref, const py::buffer& queries, const py::buffer& sb2c,
                   const py::buffer& radius, const py::buffer& reach0, uint64_t n_query, const py::buffer& out,
                   int threads, int simd_flag) {
    if (n_ref > (uint64_t)1 << 40 || n_query > (uint64_t)1 << 40)
        throw std::invalid_argument("sketch_filter: too many references or queries");
    ReadBuffer bt(sketch_t, "sketch_t"), bs(sk2c, "sk2c"), be(root_energy, "root_energy"), bl(slack, "slack"),
        bq(queries, "queries"), bq2(sb2c, "sb2c"), br(radius, "radius"), b0(reach0, "reach0");
    const Refs r{items<float>(bt, kDim * n_ref, "sketch_t"), items<double>(bs, n_ref, "sk2c"),
                 items<double>(be, n_ref, "root_energy"), items<double>(bl, n_ref, "slack"), (size_t)n_ref};
    const float* qs = items<float>(bq, kDim * n_query, "queries");
    const double* q2 = items<double>(bq2, n_query, "sb2c");
    const double* qr = items<double>(br, n_query, "radius");
    const double* q0 = items<double>(b0, n_query, "reach0");
    WriteBuffer wo(out, "out");
    uint8_t* dst = wo.span_for_items(n_ref * n_query, 1).data;
#ifdef APRQA_FILTER_AVX2
    const bool avx2 = (simd_flag < 0 || simd_flag) && simd_enabled() && __builtin_cpu_supports("fma");
#else
    const bool avx2 = false;
    (void)simd_flag;
#endif
    const int nt = n_ref * n_query < (1u << 18) ? 1 : resolve_threads(threads);
    py::gil_scoped_release release;
    parallel_slices((size_t)n_query, nt, [&](int, size_t lo, size_t hi) {
        for (size_t i = lo; i < hi; ++i) {
            const Query q{qs + i * kDim, q2[i], qr[i], q0[i]};
            uint8_t* o = dst + i * n_ref;
#ifdef APRQA_FILTER_AVX2
            if (avx2) {
                filter_avx2(r, q, o);
                continue;
            }
#endif
            filter_scalar(r, q, 0, o);
        }
    });
}

}  // namespace

void register_sketch_filter(py::module_& m) {
    m.def("sketch_filter", &sketch_filter, py::arg("sketch_t"), py::arg("sk2c"), py::arg("root_energy"),
          py::arg("slack"), py::arg("n_ref"), py::arg("queries"), py::arg("sb2c"), py::arg("radius"),
          py::arg("reach0"), py::arg("n_query"), py::arg("out"), py::arg("threads") = 0, py::arg("simd") = -1,
          "out[i, j] (uint8) = !((sk2c[j] + sb2c[i]) - 2*dot > ((radius[i]*root_energy[j] + reach0[i]) + "
          "slack[j])^2), dot the float32 fused dot product of queries[i] (float32 [n_query, 64]) with column "
          "j of sketch_t (float32 [64, n_ref]); the other inputs float64.");
}

}  // namespace aprqa
