// Scalar and AVX2 paths of row_pair_sums (row_sums.h), equal bit for bit.
#include "row_sums.h"

#include "dequant.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define APRQA_ROW_SUMS_AVX2 1
#endif

namespace aprqa {

namespace {

constexpr int kLanes = 8;
using Lanes = float[kRowSums][kLanes];

// One step of every sum for element value pair (x, y) in lane l: the order both paths follow.
inline void step(Lanes& s, int l, float x, float y) {
    const float d = y - x;
    const float xx = x * x, dd = d * d, xd = x * d;  // rounded before the adds (-ffp-contract=off)
    s[0][l] += xx;
    s[1][l] += dd;
    s[2][l] += xd;
    s[3][l] += x;
    s[4][l] += d;
}

void lanes_scalar(const float* a, const float* b, size_t n, Lanes& s) {
    for (size_t e = 0; e < n; ++e) step(s, (int)(e % kLanes), a[e], b[e]);
}

#ifdef APRQA_ROW_SUMS_AVX2
__attribute__((target("avx2"))) void lanes_avx2(const float* a, const float* b, size_t n, Lanes& s) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0;
    size_t e = 0;
    for (; e + kLanes <= n; e += kLanes) {
        const __m256 x = _mm256_loadu_ps(a + e), y = _mm256_loadu_ps(b + e);
        const __m256 d = _mm256_sub_ps(y, x);
        s0 = _mm256_add_ps(s0, _mm256_mul_ps(x, x));
        s1 = _mm256_add_ps(s1, _mm256_mul_ps(d, d));
        s2 = _mm256_add_ps(s2, _mm256_mul_ps(x, d));
        s3 = _mm256_add_ps(s3, x);
        s4 = _mm256_add_ps(s4, d);
    }
    _mm256_storeu_ps(s[0], s0);
    _mm256_storeu_ps(s[1], s1);
    _mm256_storeu_ps(s[2], s2);
    _mm256_storeu_ps(s[3], s3);
    _mm256_storeu_ps(s[4], s4);
    for (size_t l = 0; e < n; ++e, ++l) step(s, (int)l, a[e], b[e]);  // e is a multiple of 8 here
}
#endif

}  // namespace

void row_pair_sums(const float* a, const float* b, size_t n, double out[kRowSums], bool simd) {
    Lanes s = {};
#ifdef APRQA_ROW_SUMS_AVX2
    if (simd && simd_enabled())
        lanes_avx2(a, b, n, s);
    else
        lanes_scalar(a, b, n, s);
#else
    (void)simd;
    lanes_scalar(a, b, n, s);
#endif
    for (int k = 0; k < kRowSums; ++k) {
        double t = 0;
        for (int l = 0; l < kLanes; ++l) t += (double)s[k][l];
        out[k] = t;
    }
}

}  // namespace aprqa
