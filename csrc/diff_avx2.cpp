// AVX2+F16C+FMA kernels of the fused diff, chosen at run time by diff.cpp, whose scalar path is the
// reference they are tested equal to. docs/core.md ("Kernel") derives their error bounds.
#include "diff_tile.h"

#ifdef APRQA_X86
#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <type_traits>

namespace aprqa {
namespace diff_detail {

const bool kHaveFma = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
}();

namespace {

AVX2 inline int hmin_epu8(__m256i v) {
    __m128i x = _mm_min_epu8(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 8));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 4));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 2));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 1));
    return _mm_cvtsi128_si32(x) & 0xff;
}
AVX2 inline int hmax_epu8(__m256i v) {
    __m128i x = _mm_max_epu8(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 8));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 4));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 2));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 1));
    return _mm_cvtsi128_si32(x) & 0xff;
}
AVX2 inline double hmax_pd(__m256d v) {
    __m128d x = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    x = _mm_max_pd(x, _mm_unpackhi_pd(x, x));
    return _mm_cvtsd_f64(x);
}
AVX2 inline uint64_t hsum_epi64(__m256i v) {
    const __m128i x = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(x) + (uint64_t)_mm_extract_epi64(x, 1);
}

AVX2 void drain_avx2(Hist& h) {
    const __m256i z = _mm256_setzero_si256();
    for (int k = h.touched_lo; k <= h.touched_hi; ++k) {
        __m256i* row = reinterpret_cast<__m256i*>(h.c8[k]);
        h.h[0][k] += hsum_epi64(_mm256_sad_epu8(_mm256_load_si256(row), z));
        _mm256_store_si256(row, z);
    }
    h.pending = 0;
    h.touched_lo = kHistBuckets;
    h.touched_hi = -1;
}

// Nibble tables for count_window_avx2: table t maps byte offset 2t to 0x01 and 2t + 1 to 0x10 (the
// low / high nibble counter of one byte lane), every other offset to 0; both 128-bit halves alike.
struct NibbleTables {
    alignas(32) uint8_t t[8][32];
    NibbleTables() {
        std::memset(t, 0, sizeof t);
        for (int k = 0; k < 8; ++k)
            for (int half = 0; half < 32; half += 16) {
                t[k][half + 2 * k] = 0x01;
                t[k][half + 2 * k + 1] = 0x10;
            }
    }
};
const NibbleTables kNibble;

// Counts the bytes of by[0..nv) equal to base .. base + 2T - 1 into the 8-bit lane counters
// rows[0 .. 2T) (rows[j] counts value base + j) and adds the counted bytes per lane to tot.
// off = adds_epu8(by - base, 0x70) keeps offsets 0..15 as 0x70..0x7F and sends every other
// byte (below base, zero, or base + 16 and up: base is 1..240) to 0x80 and above, which
// vpshufb maps to 0; table t turns offsets 2t / 2t + 1 into +1 in the low / high nibble of
// a byte accumulator, so one shuffle and one add count two buckets. A nibble holds 15:
// the accumulators are split into the 8-bit rows after every 15 vectors.
template <int T>
AVX2 inline void count_window_avx2(const __m256i* by, size_t nv, int base, uint8_t (*rows)[32], __m256i& tot) {
    static_assert(T >= 1 && T <= 8, "one window: at most 16 buckets");
    const __m256i vbase = _mm256_set1_epi8((char)base), c70 = _mm256_set1_epi8(0x70);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i tab[T];
    for (int t = 0; t < T; ++t) tab[t] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kNibble.t[t]));
    for (size_t v0 = 0; v0 < nv; v0 += 15) {
        const size_t v1 = std::min(nv, v0 + 15);
        __m256i acc[T];
        for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_si256();
        for (size_t v = v0; v < v1; ++v) {
            const __m256i off = _mm256_adds_epu8(_mm256_sub_epi8(_mm256_load_si256(by + v), vbase), c70);
            for (int t = 0; t < T; ++t) acc[t] = _mm256_add_epi8(acc[t], _mm256_shuffle_epi8(tab[t], off));
        }
        for (int t = 0; t < T; ++t) {
            const __m256i c0 = _mm256_and_si256(acc[t], low4);
            const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(acc[t], 4), low4);
            __m256i* r0 = reinterpret_cast<__m256i*>(rows[2 * t]);
            __m256i* r1 = reinterpret_cast<__m256i*>(rows[2 * t + 1]);
            _mm256_store_si256(r0, _mm256_add_epi8(_mm256_load_si256(r0), c0));
            _mm256_store_si256(r1, _mm256_add_epi8(_mm256_load_si256(r1), c1));
            tot = _mm256_add_epi8(tot, _mm256_add_epi8(c0, c1));
        }
    }
}

// Counts the bytes by[0..nv) (32 per vector): a byte v is 0 (bucket 0) or bias + its
// bucket, and the nonzero bytes lie in [lo, hi] (1 <= lo, hi <= bias + 62, bias + 62 <= 240).
// Windows of 16 values from lo are counted by count_window_avx2 (two buckets per shuffle),
// bucket 0 is the rest; a range wider than kVecBuckets counts with scalar increments.
AVX2 void hist_count_bytes_avx2(const __m256i* by, size_t nv, int lo, int hi, int bias, Hist& h) {
    if (hi >= lo && hi - lo + 1 > kVecBuckets) {
        const uint8_t* bb = reinterpret_cast<const uint8_t*>(by);
        for (size_t i = 0; i < 32 * nv; ++i) ++h.h[i & 7][bb[i] ? bb[i] - bias : 0];
        return;
    }
    if (h.pending + (int)nv > 255) drain_avx2(h);
    h.pending += (int)nv;
    __m256i tot = _mm256_setzero_si256();
    for (int base = lo; base <= hi; base += 16) {
        uint8_t(*rows)[32] = h.c8 + (base - bias);
        switch ((std::min(hi, base + 15) - base + 2) / 2) {  // shuffles needed: the last may count one row beyond hi
            case 1: count_window_avx2<1>(by, nv, base, rows, tot); break;
            case 2: count_window_avx2<2>(by, nv, base, rows, tot); break;
            case 3: count_window_avx2<3>(by, nv, base, rows, tot); break;
            case 4: count_window_avx2<4>(by, nv, base, rows, tot); break;
            case 5: count_window_avx2<5>(by, nv, base, rows, tot); break;
            case 6: count_window_avx2<6>(by, nv, base, rows, tot); break;
            case 7: count_window_avx2<7>(by, nv, base, rows, tot); break;
            default: count_window_avx2<8>(by, nv, base, rows, tot); break;
        }
    }
    __m256i* row0 = reinterpret_cast<__m256i*>(h.c8[0]);  // each byte lane saw nv bytes
    _mm256_store_si256(row0, _mm256_add_epi8(_mm256_load_si256(row0),
                                             _mm256_sub_epi8(_mm256_set1_epi8((char)nv), tot)));
    h.touched_lo = 0;
    h.touched_hi = std::max(h.touched_hi, hi >= lo ? hi - bias + 1 : 0);
}

// Biased exponents in 16-bit lanes (x0, x1) -> bucket bytes: 0 if e == 0
// (|d| == 0), else clamp(e - bias_off, 1, 62); updates the byte min/max.
AVX2 inline __m256i bucket_bytes(__m256i x0, __m256i x1, __m256i cofs, __m256i& vlo, __m256i& vhi) {
    const __m256i one16 = _mm256_set1_epi16(1), c62 = _mm256_set1_epi16(62), one8 = _mm256_set1_epi8(1);
    const __m256i b0 =
        _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(x0, cofs), _mm256_min_epu16(x0, one16)), c62);
    const __m256i b1 =
        _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(x1, cofs), _mm256_min_epu16(x1, one16)), c62);
    const __m256i by = _mm256_packus_epi16(b0, b1);  // lane order is irrelevant for a histogram
    vlo = _mm256_min_epu8(vlo, _mm256_sub_epi8(by, one8));  // bucket 0 -> 255
    vhi = _mm256_max_epu8(vhi, by);
    return by;
}

// Histogram of one verified chunk from |d| (finite doubles, sign clear).
// len is a multiple of 8, at most kChunk.
AVX2 void hist_chunk_avx2(const double* ad, size_t len, Hist& h) {
    const size_t nv = len / 32;
    if (nv) {
        const __m256i c981 = _mm256_set1_epi16(1023 - 42);
        alignas(32) __m256i by[kChunk / 32];
        __m256i vlo = _mm256_set1_epi8(-1), vhi = _mm256_setzero_si256();
        for (size_t v = 0; v < nv; ++v) {
            // high dwords of 8 doubles (lane order is irrelevant for a histogram)
            auto hi8 = [&](size_t q) AVX2 {
                const float* p = reinterpret_cast<const float*>(ad + 32 * v + 8 * q);
                return _mm256_castps_si256(
                    _mm256_shuffle_ps(_mm256_load_ps(p), _mm256_load_ps(p + 8), _MM_SHUFFLE(3, 1, 3, 1)));
            };
            // biased exponent (0..2047, sign bit is clear)
            const __m256i e0 = _mm256_srli_epi32(hi8(0), 20), e1 = _mm256_srli_epi32(hi8(1), 20);
            const __m256i e2 = _mm256_srli_epi32(hi8(2), 20), e3 = _mm256_srli_epi32(hi8(3), 20);
            by[v] = bucket_bytes(_mm256_packs_epi32(e0, e1), _mm256_packs_epi32(e2, e3), c981, vlo, vhi);
        }
        hist_count_bytes_avx2(by, nv, hmin_epu8(vlo) + 1, hmax_epu8(vhi), 0, h);
    }
    for (size_t i = 32 * nv; i < len; ++i) ++h.h[i & 7][bucket_of(ad[i])];
}

// Same from |d| as f32 (sign clear, finite). kF16Pair: |d| of two f16 values is 0 or
// in [2^-24, 2^18), biased exponent e in {0} u [103, 144], so the byte is e itself and
// the bucket e - (127 - 42) (18..59 for nonzero |d|, never clamped): bias 85. Otherwise
// e is 0..254 and a nonzero subnormal |d| has e = 0: the byte is the bucket, 0 for
// |d| == 0, else clamp(max(e, 1) - 85, 1, 62) (bucket 1 below 2^-40, 62 from 2^20 up).
// len is a multiple of 32.
template <bool kF16Pair>
AVX2 void hist_chunk_f32_avx2(const float* ad, size_t len, Hist& h) {
    const size_t nv = len / 32;
    const __m256i c85 = _mm256_set1_epi16(127 - 42), one8 = _mm256_set1_epi8(1), one32 = _mm256_set1_epi32(1);
    const __m256i one16 = _mm256_set1_epi16(1), c62 = _mm256_set1_epi16(62);
    alignas(32) __m256i by[kHistChunk / 32];
    __m256i vlo = _mm256_set1_epi8(-1), vhi = _mm256_setzero_si256();
    for (size_t v = 0; v < nv; ++v) {
        const float* p = ad + 32 * v;
        __m256i e[4];
        for (int q = 0; q < 4; ++q) {
            const __m256i bits = _mm256_castps_si256(_mm256_load_ps(p + 8 * q));
            e[q] = _mm256_srli_epi32(bits, 23);
            // a nonzero subnormal counts as exponent 1 (so bucket 1 below), zero stays 0
            if (!kF16Pair) e[q] = _mm256_max_epu32(e[q], _mm256_min_epu32(bits, one32));
        }
        __m256i x0 = _mm256_packs_epi32(e[0], e[1]), x1 = _mm256_packs_epi32(e[2], e[3]);  // 0..255: exact
        if (!kF16Pair) {  // nonzero |d| -> at least bucket 1, at most 62
            const __m256i z0 = x0, z1 = x1;
            x0 = _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(z0, c85), _mm256_min_epu16(z0, one16)), c62);
            x1 = _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(z1, c85), _mm256_min_epu16(z1, one16)), c62);
        }
        by[v] = _mm256_packus_epi16(x0, x1);  // lane order is irrelevant for a histogram
        vlo = _mm256_min_epu8(vlo, _mm256_sub_epi8(by[v], one8));  // zero -> 255
        vhi = _mm256_max_epu8(vhi, by[v]);
    }
    hist_count_bytes_avx2(by, nv, hmin_epu8(vlo) + 1, hmax_epu8(vhi), kF16Pair ? 127 - 42 : 0, h);
}

// Sides as the AVX2 kernel reads them: f32 values, or a raw IEEE half payload
// converted on the fly with F16C (no buffer round trip for f16 tensors).
AVX2 inline __m256d load4_pd(const float* p, size_t j) { return _mm256_cvtps_pd(_mm_loadu_ps(p + j)); }
AVX2 inline __m256d load4_pd(const uint16_t* p, size_t j) {
    return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + j))));
}
AVX2 inline __m256i load8_bits(const float* p, size_t j) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j));
}
AVX2 inline __m256i load8_bits(const uint16_t* p, size_t j) {
    return _mm256_castps_si256(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j))));
}

AVX2 inline __m256 load8_ps(const float* p, size_t j) { return _mm256_loadu_ps(p + j); }
AVX2 inline __m256 load8_ps(const uint16_t* p, size_t j) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j)));
}

// f32 values of len elements of a side: in place for f32, exact scalar
// conversion (NaN payloads kept, as dequant_f16_ref) into buf for f16.
inline const float* materialize(const float* p, size_t, float*) { return p; }
inline const float* materialize(const uint16_t* p, size_t len, float* buf) {
    for (size_t i = 0; i < len; ++i) buf[i] = f16_to_f32(p[i]);
    return buf;
}

// Failures in a verified all-finite chunk (same double ops as stats_scalar).
template <typename TA, typename TB>
AVX2 uint64_t count_fail_avx2(const TA* A, const TB* B, size_t len, const DiffOptions& o) {
    const __m256d sign = _mm256_set1_pd(-0.0), vatol = _mm256_set1_pd(o.atol), vrtol = _mm256_set1_pd(o.rtol);
    uint64_t n = 0;
    for (size_t j = 0; j < len; j += 4) {
        const __m256d a = load4_pd(A, j), b = load4_pd(B, j);
        const __m256d ad = _mm256_andnot_pd(sign, _mm256_sub_pd(b, a)), aa = _mm256_andnot_pd(sign, a);
        const __m256d m = _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, aa));
        n += (uint64_t)__builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(m, vatol, _CMP_GT_OQ)));
    }
    return n;
}

// n_equal of a verified all-finite chunk: identical f32 bit patterns. For two
// f16 sides the half bits are compared directly (f16 -> f32 is injective).
template <typename TA, typename TB>
AVX2 uint64_t count_equal_avx2(const TA* A, const TB* B, size_t len) {
    __m256i veq = _mm256_setzero_si256();
    for (size_t j = 0; j < len; j += 8)
        veq = _mm256_sub_epi32(veq, _mm256_cmpeq_epi32(load8_bits(A, j), load8_bits(B, j)));
    const __m128i e = _mm_add_epi32(_mm256_castsi256_si128(veq), _mm256_extracti128_si256(veq, 1));
    return (uint64_t)(uint32_t)(_mm_cvtsi128_si32(e) + _mm_extract_epi32(e, 1) + _mm_extract_epi32(e, 2) +
                                _mm_extract_epi32(e, 3));
}
template <>
AVX2 uint64_t count_equal_avx2<uint16_t, uint16_t>(const uint16_t* A, const uint16_t* B, size_t len) {
    __m256i veq = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 16 <= len; j += 16)
        veq = _mm256_sub_epi16(veq, _mm256_cmpeq_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + j)),
                                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + j))));
    // 16-bit lanes hold at most kChunk/16 = 64; widen and add
    const __m256i w = _mm256_madd_epi16(veq, _mm256_set1_epi16(1));
    const __m128i e = _mm_add_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    uint64_t n = (uint64_t)(uint32_t)(_mm_cvtsi128_si32(e) + _mm_extract_epi32(e, 1) + _mm_extract_epi32(e, 2) +
                                      _mm_extract_epi32(e, 3));
    for (; j < len; ++j) n += A[j] == B[j];
    return n;
}

// One piece (n elements): chunks of kChunk, each verified all-finite or redone
// by stats_scalar. kRtol = false when rtol == 0, so that m = |d| and the
// tolerance work folds into max|d|. The loop body keeps 9 accumulators and 5
// temporaries in the 16 ymm registers (no spills: a spilled accumulator turns
// into a store-forwarding chain).
template <bool kRtol, typename TA, typename TB>
AVX2 void stats_avx2(const TA* A, const TB* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    const __m256d sign = _mm256_set1_pd(-0.0), vrtol = _mm256_set1_pd(o.rtol), zero = _mm256_setzero_pd();
    const __m256d vatol = _mm256_set1_pd(o.atol);
    __m256d P[kSums], Pmax = zero, Pmat = zero;  // piece accumulators
    for (int i = 0; i < kSums; ++i) P[i] = zero;
    uint64_t n_fin = 0, n_eq = 0, n_fail = 0;
    alignas(32) double adb[kChunk];  // |d| of the chunk, for the histogram
    size_t k = 0;
    const size_t n8 = n - n % 8;
    while (k < n8) {
        const size_t len = std::min(kChunk, n8 - k);
        const TA* a0 = A + k;
        const TB* b0 = B + k;
        __m256d s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero, vmax = zero,
                vmat = zero;
        for (size_t j = 0; j < len; j += 4) {
            const __m256d a = load4_pd(a0, j);
            const __m256d b = load4_pd(b0, j);
            const __m256d d = _mm256_sub_pd(b, a);
            const __m256d ad = _mm256_andnot_pd(sign, d);
            s0 = _mm256_add_pd(s0, d);
            s1 = _mm256_add_pd(s1, ad);
            s2 = _mm256_fmadd_pd(d, d, s2);
            s3 = _mm256_add_pd(s3, a);
            s4 = _mm256_fmadd_pd(a, a, s4);
            s5 = _mm256_fmadd_pd(b, b, s5);
            s6 = _mm256_fmadd_pd(a, b, s6);
            s7 = _mm256_fmadd_pd(a, d, s7);
            vmax = _mm256_max_pd(vmax, ad);
            if (kRtol)
                vmat = _mm256_max_pd(vmat, _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, _mm256_andnot_pd(sign, a))));
            if (hist) _mm256_store_pd(adb + j, ad);
        }
        if (!kRtol) vmat = vmax;
        // all lanes finite <=> x * 0 == 0 in every lane
        const __m256d x = _mm256_add_pd(s0, s3);
        if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_mul_pd(x, zero), zero, _CMP_EQ_OQ)) != 0xf) {
            float fa[kChunk], fb[kChunk];
            stats_scalar(materialize(a0, len, fa), materialize(b0, len, fb), len, o, t, hist);
            k += len;
            continue;
        }
        P[0] = _mm256_add_pd(P[0], s0);
        P[1] = _mm256_add_pd(P[1], s1);
        P[2] = _mm256_add_pd(P[2], s2);
        P[3] = _mm256_add_pd(P[3], s3);
        P[4] = _mm256_add_pd(P[4], s4);
        P[5] = _mm256_add_pd(P[5], s5);
        P[6] = _mm256_add_pd(P[6], s6);
        P[7] = _mm256_add_pd(P[7], s7);
        Pmax = _mm256_max_pd(Pmax, vmax);
        Pmat = _mm256_max_pd(Pmat, vmat);
        if (_mm256_movemask_pd(_mm256_cmp_pd(vmat, vatol, _CMP_GT_OQ)))  // some m > atol in the chunk
            n_fail += count_fail_avx2(a0, b0, len, o);
        n_eq += count_equal_avx2(a0, b0, len);
        n_fin += len;
        if (hist) hist_chunk_avx2(adb, len, *hist);
        k += len;
    }
    alignas(32) double buf[kSums][4];
    for (int i = 0; i < kSums; ++i) _mm256_store_pd(buf[i], P[i]);
    for (int i = 0; i < kSums; ++i) t.s[i] += (buf[i][0] + buf[i][1]) + (buf[i][2] + buf[i][3]);
    // lanes only hold finite values >= 0 here: plain comparisons (std::fmax is a libm call)
    const double mx = hmax_pd(Pmax), mt = hmax_pd(Pmat);
    if (mx > t.max_abs) t.max_abs = mx;
    if (mt > t.min_atol) t.min_atol = mt;
    t.n_finite += n_fin;
    t.n_equal += n_eq;
    t.n_fail += n_fail;
    if (n8 < n) {
        float fa[8], fb[8];
        stats_scalar(materialize(A + n8, n - n8, fa), materialize(B + n8, n - n8, fb), n - n8, o, t, hist);
    }
}

// ---- f32 lane accumulators, every pair (see the header comment) ----
constexpr size_t kChunk32 = 256;  // elements per f32 accumulation chunk: 32 terms per lane
static_assert(kChunk32 % 32 == 0 && kHistChunk % kChunk32 == 0, "f32 chunks fill the histogram buffer");

AVX2 inline float hmax_ps(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

// Failures and the exact max of m = |d| - rtol*|a| of a verified all-finite
// chunk (the same double ops as stats_scalar).
template <typename TA, typename TB>
AVX2 uint64_t fail_max_avx2(const TA* A, const TB* B, size_t len, const DiffOptions& o, double& maxm) {
    const __m256d sign = _mm256_set1_pd(-0.0), vatol = _mm256_set1_pd(o.atol), vrtol = _mm256_set1_pd(o.rtol);
    __m256d vm = _mm256_setzero_pd();
    uint64_t n = 0;
    for (size_t j = 0; j < len; j += 4) {
        const __m256d a = load4_pd(A, j), b = load4_pd(B, j);
        const __m256d ad = _mm256_andnot_pd(sign, _mm256_sub_pd(b, a)), aa = _mm256_andnot_pd(sign, a);
        const __m256d m = _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, aa));
        n += (uint64_t)__builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(m, vatol, _CMP_GT_OQ)));
        vm = _mm256_max_pd(vm, m);
    }
    maxm = hmax_pd(vm);  // >= 0 (vm starts at 0), like the clamped min_atol
    return n;
}

// |d| in double (the reference's d) of a finite chunk into ad; returns its max.
template <typename TA, typename TB>
AVX2 double abs_d_double(const TA* A, const TB* B, size_t len, double* ad) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d vm = _mm256_setzero_pd();
    for (size_t j = 0; j < len; j += 4) {
        const __m256d x = _mm256_andnot_pd(sign, _mm256_sub_pd(load4_pd(B, j), load4_pd(A, j)));
        _mm256_store_pd(ad + j, x);
        vm = _mm256_max_pd(vm, x);
    }
    return hmax_pd(vm);
}

// True when every f32 difference b - a of the chunk is exact and finite:
// fl(b - a) is exact <=> b - d == a and a + d == b (Fast2Sum: z = fl(s - x) is
// exact for |x| >= |y|, so the order that applies decides, and an exact d
// passes both); a NaN or Inf fails one of the two compares.
template <typename TA, typename TB>
AVX2 bool chunk_exact(const TA* A, const TB* B, size_t len) {
    __m256 bad = _mm256_setzero_ps();
    for (size_t j = 0; j < len; j += 8) {
        const __m256 a = load8_ps(A, j), b = load8_ps(B, j);
        const __m256 d = _mm256_sub_ps(b, a);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(_mm256_sub_ps(b, d), a, _CMP_NEQ_UQ),
                                             _mm256_cmp_ps(_mm256_add_ps(a, d), b, _CMP_NEQ_UQ)));
    }
    return _mm256_movemask_ps(bad) == 0;
}

// One piece in chunks of kChunk32 with f32 lane sums (header comment). TA/TB:
// float (f32 read in place, or a dequantized buffer) or uint16_t (raw f16).
// Chunks that hold a NaN/Inf, a difference not exact in f32 or a sum that
// overflows f32 are redone by stats_avx2 (double).
template <bool kRtol, typename TA, typename TB>
AVX2 void stats_f32acc(const TA* A, const TB* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    constexpr bool kF16Pair = std::is_same<TA, uint16_t>::value && std::is_same<TB, uint16_t>::value;
    const __m256 sign = _mm256_set1_ps(-0.0f), zf = _mm256_setzero_ps();
    const __m256 vrtol = _mm256_set1_ps((float)o.rtol);
    __m256d P[kSums];
    for (int i = 0; i < kSums; ++i) P[i] = _mm256_setzero_pd();
    __m256 Pmax = zf;
    uint64_t n_fin = 0, n_eq = 0, n_fail = 0;
    alignas(32) float adb[kHistChunk];  // |d| of verified chunks, histogrammed kHistChunk at a time
    alignas(32) double dd[kChunk32];  // |d| in double of an inexact chunk
    double dmax = 0;                  // max |d| over inexact chunks
    size_t fill = 0;
    const size_t nc = n - n % kChunk32;
    for (size_t k = 0; k < nc; k += kChunk32) {
        const TA* a0 = A + k;
        const TB* b0 = B + k;
        __m256 s0 = zf, s1 = zf, s2 = zf, s3 = zf, s4 = zf, s5 = zf, s6 = zf, s7 = zf, vmat = zf;
        __m256i vmax = _mm256_setzero_si256();  // max |d| as unsigned bits (NaN above every finite value)
        for (size_t j = 0; j < kChunk32; j += 8) {
            const __m256 a = load8_ps(a0, j);
            const __m256 b = load8_ps(b0, j);
            const __m256 d = _mm256_sub_ps(b, a);
            const __m256 ad = _mm256_andnot_ps(sign, d);
            // unsigned max of the bits of values >= 0 is their float max; a NaN stays the max
            vmax = _mm256_max_epu32(vmax, _mm256_castps_si256(ad));
            s0 = _mm256_add_ps(s0, d);
            s1 = _mm256_add_ps(s1, ad);
            s3 = _mm256_add_ps(s3, a);
            s2 = _mm256_fmadd_ps(d, d, s2);
            s4 = _mm256_fmadd_ps(a, a, s4);
            s5 = _mm256_fmadd_ps(b, b, s5);
            s6 = _mm256_fmadd_ps(a, b, s6);
            s7 = _mm256_fmadd_ps(a, d, s7);
            if (kRtol) vmat = _mm256_max_ps(vmat, _mm256_fnmadd_ps(vrtol, _mm256_andnot_ps(sign, a), ad));
            if (hist) _mm256_store_ps(adb + fill + j, ad);
        }
        bool redo, inexact = false;  // inexact: finite, but some f32 d is rounded (never for f16 pairs)
        if (kF16Pair) {
            // every d is exact when max |d| < 1 (header comment); else verify (NaN/Inf land here too);
            // f16 terms cannot overflow an f32 lane sum
            redo = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(vmax, _mm256_set1_epi32(0x3f7fffff)))) &&
                   !chunk_exact(a0, b0, kChunk32);
        } else {
            // all lane sums finite (x * 0 == 0): a, b and every d32 are finite
            const __m256 x = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                                           _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
            redo = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_mul_ps(x, zf), zf, _CMP_EQ_OQ)) != 0xff;
            inexact = !redo && !chunk_exact(a0, b0, kChunk32);
        }
        if (redo) {
            stats_avx2<kRtol>(a0, b0, kChunk32, o, t, hist);
            continue;
        }
        const __m256 sv[kSums] = {s0, s1, s2, s3, s4, s5, s6, s7};
        for (int i = 0; i < kSums; ++i)
            P[i] = _mm256_add_pd(P[i], _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(sv[i])),
                                                     _mm256_cvtps_pd(_mm256_extractf128_ps(sv[i], 1))));
        double cmax;  // exact max |d| of the chunk
        if (inexact) {  // the sums keep d32 (one more rounding, header comment); |d| for the rest in double
            cmax = abs_d_double(a0, b0, kChunk32, dd);
            if (cmax > dmax) dmax = cmax;
        } else {
            Pmax = _mm256_max_ps(Pmax, _mm256_castsi256_ps(vmax));
            cmax = hmax_ps(_mm256_castsi256_ps(vmax));
        }
        if (kRtol) {
            // |m32 - m| < 2^-20 * cmax + 2^-149 for every m that can matter (header comment)
            if ((double)hmax_ps(vmat) + cmax * 0x1p-20 + 0x1p-149 > std::min(o.atol, t.min_atol)) {
                double mx = 0;
                n_fail += fail_max_avx2(a0, b0, kChunk32, o, mx);
                if (mx > t.min_atol) t.min_atol = mx;
            }
        } else if (cmax > o.atol) {
            n_fail += count_fail_avx2(a0, b0, kChunk32, o);
        }
        n_eq += count_equal_avx2(a0, b0, kChunk32);
        n_fin += kChunk32;
        if (hist && inexact) {
            hist_chunk_avx2(dd, kChunk32, *hist);
        } else if (hist && (fill += kChunk32) == kHistChunk) {
            hist_chunk_f32_avx2<kF16Pair>(adb, fill, *hist);
            fill = 0;
        }
    }
    if (hist && fill) hist_chunk_f32_avx2<kF16Pair>(adb, fill, *hist);
    alignas(32) double buf[kSums][4];
    for (int i = 0; i < kSums; ++i) _mm256_store_pd(buf[i], P[i]);
    for (int i = 0; i < kSums; ++i) t.s[i] += (buf[i][0] + buf[i][1]) + (buf[i][2] + buf[i][3]);
    const double mx = std::max<double>(hmax_ps(Pmax), dmax);
    if (mx > t.max_abs) t.max_abs = mx;
    if (!kRtol && mx > t.min_atol) t.min_atol = mx;  // m = |d| when rtol == 0
    t.n_finite += n_fin;
    t.n_equal += n_eq;
    t.n_fail += n_fail;
    if (nc < n) stats_avx2<kRtol>(A + nc, B + nc, n - nc, o, t, hist);
}

template <typename TA, typename TB>
AVX2 void stats_lanes(const TA* A, const TB* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    if (!(o.rtol > 0))
        stats_f32acc<false>(A, B, n, o, t, hist);
    else if (o.rtol >= 1e-30 && o.rtol <= 1e30)  // rtol is a normal f32 (bound on m32 holds)
        stats_f32acc<true>(A, B, n, o, t, hist);
    else
        stats_avx2<true>(A, B, n, o, t, hist);
}

// find_first_abs on the AVX2 path, sides as the kernel reads them (raw f16 converted with F16C: a
// NaN's payload may change, but a pair holding a NaN or Inf never has |b - a| == target, which is finite).
inline float value_at(const float* p, size_t i) { return p[i]; }
inline float value_at(const uint16_t* p, size_t i) { return f16_to_f32(p[i]); }
template <typename TA, typename TB>
AVX2 size_t find_first_abs_avx2(const TA* A, const TB* B, size_t n, double target) {
    const __m256d sign = _mm256_set1_pd(-0.0), t = _mm256_set1_pd(target);
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const __m256d ad = _mm256_andnot_pd(sign, _mm256_sub_pd(load4_pd(B, k), load4_pd(A, k)));
        const int m = _mm256_movemask_pd(_mm256_cmp_pd(ad, t, _CMP_EQ_OQ));
        if (m) return k + (size_t)__builtin_ctz((unsigned)m);
    }
    for (; k < n; ++k)
        if (std::fabs((double)value_at(B, k) - (double)value_at(A, k)) == target) return k;
    return 0;
}

}  // namespace

void tile_stats_avx2(PieceSide a, PieceSide b, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    if (a.f16 && b.f16) stats_lanes(a.half(), b.half(), n, o, t, hist);
    else if (a.f16) stats_lanes(a.half(), b.f32(), n, o, t, hist);
    else if (b.f16) stats_lanes(a.f32(), b.half(), n, o, t, hist);
    else stats_lanes(a.f32(), b.f32(), n, o, t, hist);
}

size_t find_first_avx2(PieceSide a, PieceSide b, size_t n, double target) {
    if (a.f16 && b.f16) return find_first_abs_avx2(a.half(), b.half(), n, target);
    if (a.f16) return find_first_abs_avx2(a.half(), b.f32(), n, target);
    if (b.f16) return find_first_abs_avx2(a.f32(), b.half(), n, target);
    return find_first_abs_avx2(a.f32(), b.f32(), n, target);
}

AVX2 uint64_t sum_bytes_avx2(const uint8_t* p, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    const __m256i z = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_sad_epu8(x, z), _mm256_sad_epu8(y, z)));
    }
    alignas(32) uint64_t v[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), acc);
    uint64_t s = v[0] + v[1] + v[2] + v[3];
    for (; i < n; ++i) s += p[i];
    return s;
}

}  // namespace diff_detail
}  // namespace aprqa
#endif
