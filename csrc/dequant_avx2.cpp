// AVX2+F16C dequantizers, same signature as the `_ref` versions. Compiled with
// per-function target attributes (never -march=native) and only called after
// __builtin_cpu_supports says so. Each does exactly the ref's f32 operations in
// the same order (explicit mul/sub intrinsics, no FMA), so results are bit-equal.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstring>

#include "blocks.h"
#include "half.h"

#define AVX2 __attribute__((target("avx2,f16c")))

namespace aprqa {

AVX2 void dequant_f16_avx2(const uint8_t* s, float* y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i h0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i));
        __m128i h1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i + 16));
        // F16C quiets signalling NaNs; numpy (and _ref) keep the payload: NaN/Inf chunks go scalar.
        const __m128i em = _mm_set1_epi16(0x7c00);
        const __m128i sp = _mm_or_si128(_mm_cmpeq_epi16(_mm_and_si128(h0, em), em),
                                        _mm_cmpeq_epi16(_mm_and_si128(h1, em), em));
        if (__builtin_expect(_mm_movemask_epi8(sp) != 0, 0)) {
            for (size_t j = i; j < i + 16; ++j) y[j] = f16_to_f32(load_u16(s + 2 * j));
            continue;
        }
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h0));
        _mm256_storeu_ps(y + i + 8, _mm256_cvtph_ps(h1));
    }
    for (; i < n; ++i) y[i] = f16_to_f32(load_u16(s + 2 * i));
}

AVX2 static inline __m256 i8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }
AVX2 static inline __m256 u8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

AVX2 void dequant_q8_0_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q8_0* b = reinterpret_cast<const block_q8_0*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs));
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        _mm256_storeu_ps(y + 0, _mm256_mul_ps(i8x8_to_ps(lo), d));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(i8x8_to_ps(_mm_srli_si128(lo, 8)), d));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(i8x8_to_ps(hi), d));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(i8x8_to_ps(_mm_srli_si128(hi, 8)), d));
    }
}

AVX2 void dequant_q4_0_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q4_0* b = reinterpret_cast<const block_q4_0*>(s);
    const __m128i m4 = _mm_set1_epi8(0x0F), e8 = _mm_set1_epi8(8);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), e8);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), e8);
        _mm256_storeu_ps(y + 0, _mm256_mul_ps(d, i8x8_to_ps(lo)));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(lo, 8))));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(d, i8x8_to_ps(hi)));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(hi, 8))));
    }
}

static inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// 32 unsigned bytes -> y[0..31] = dl*q - ml
AVX2 static inline void emit32_u8(__m256i q, __m256 dl, __m256 ml, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(lo)), ml));
    _mm256_storeu_ps(y + 8, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(_mm_srli_si128(lo, 8))), ml));
    _mm256_storeu_ps(y + 16, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(hi)), ml));
    _mm256_storeu_ps(y + 24, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(_mm_srli_si128(hi, 8))), ml));
}

AVX2 void dequant_q4_K_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q4_K* b = reinterpret_cast<const block_q4_K*>(s);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int c = 0; c < 4; ++c, y += 64) {
            uint8_t sc, m;
            scale_min_k4(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * c));
            emit32_u8(_mm256_and_si256(q, m4), _mm256_set1_ps(d1), _mm256_set1_ps(m1), y);
            emit32_u8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_set1_ps(d2), _mm256_set1_ps(m2),
                      y + 32);
        }
    }
}

AVX2 void dequant_q5_K_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q5_K* b = reinterpret_cast<const block_q5_K*>(s);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh));
        for (int c = 0; c < 4; ++c, y += 64) {
            uint8_t sc, m;
            scale_min_k4(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * c));
            // bit (2c) / (2c+1) of each qh byte, moved to bit 4 (16-bit shifts then byte mask)
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
            const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
            emit32_u8(_mm256_or_si256(_mm256_and_si256(q, m4), h1), _mm256_set1_ps(d1), _mm256_set1_ps(m1), y);
            emit32_u8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h2), _mm256_set1_ps(d2),
                      _mm256_set1_ps(m2), y + 32);
        }
    }
}

AVX2 void dequant_q6_K_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q6_K* b = reinterpret_cast<const block_q6_K*>(s);
    const __m256i m4 = _mm256_set1_epi32(0xF), m3 = _mm256_set1_epi32(3), e32 = _mm256_set1_epi32(32);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int n = 0; n < 2; ++n, y += 128) {
            const uint8_t* ql = b[i].ql + 64 * n;
            const uint8_t* qh = b[i].qh + 32 * n;
            const int8_t* sc = b[i].scales + 8 * n;
            float ds[8];
            for (int k = 0; k < 8; ++k) ds[k] = d * (float)sc[k];
            for (int l = 0; l < 32; l += 8) {
                const __m256i A = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ql + l)));
                const __m256i B =
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ql + l + 32)));
                const __m256i H = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qh + l)));
                const __m256i q1 = _mm256_sub_epi32(
                    _mm256_or_si256(_mm256_and_si256(A, m4), _mm256_slli_epi32(_mm256_and_si256(H, m3), 4)), e32);
                const __m256i q2 = _mm256_sub_epi32(
                    _mm256_or_si256(_mm256_and_si256(B, m4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(H, 2), m3), 4)),
                    e32);
                const __m256i q3 = _mm256_sub_epi32(
                    _mm256_or_si256(_mm256_srli_epi32(A, 4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(H, 4), m3), 4)),
                    e32);
                const __m256i q4 = _mm256_sub_epi32(
                    _mm256_or_si256(_mm256_srli_epi32(B, 4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(H, 6), m3), 4)),
                    e32);
                const int k = l / 16;
                _mm256_storeu_ps(y + l, _mm256_mul_ps(_mm256_set1_ps(ds[k]), _mm256_cvtepi32_ps(q1)));
                _mm256_storeu_ps(y + l + 32, _mm256_mul_ps(_mm256_set1_ps(ds[2 + k]), _mm256_cvtepi32_ps(q2)));
                _mm256_storeu_ps(y + l + 64, _mm256_mul_ps(_mm256_set1_ps(ds[4 + k]), _mm256_cvtepi32_ps(q3)));
                _mm256_storeu_ps(y + l + 96, _mm256_mul_ps(_mm256_set1_ps(ds[6 + k]), _mm256_cvtepi32_ps(q4)));
            }
        }
    }
}

// ---- legacy 32-element blocks with a min or a fifth bit, IQ4 ----------------------

// 32 signed bytes -> y[0..31] = d*q
AVX2 static inline void emit32_i8_mul(__m256i q, __m256 d, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_mul_ps(d, i8x8_to_ps(lo)));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(lo, 8))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(d, i8x8_to_ps(hi)));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(hi, 8))));
}
// 32 unsigned bytes -> y[0..31] = d*q + m
AVX2 static inline void emit32_u8_muladd(__m256i q, __m256 d, __m256 m, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(lo)), m));
    _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(_mm_srli_si128(lo, 8))), m));
    _mm256_storeu_ps(y + 16, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(hi)), m));
    _mm256_storeu_ps(y + 24, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(_mm_srli_si128(hi, 8))), m));
}
// 16 packed bytes -> 32 bytes: lo nibbles (elements 0..15), then hi nibbles (16..31).
AVX2 static inline __m256i nibbles32(const uint8_t* qs) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)), m4 = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}
// u32 qh -> 32 bytes, byte j = 0x10 when bit j of qh is set, else 0.
AVX2 static inline __m256i qh_bit4(uint32_t qh) {
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), sel);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

AVX2 void dequant_q4_1_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q4_1* b = reinterpret_cast<const block_q4_1*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32)
        emit32_u8_muladd(nibbles32(b[i].qs), _mm256_set1_ps(f16_to_f32(b[i].d)), _mm256_set1_ps(f16_to_f32(b[i].m)),
                         y);
}

AVX2 void dequant_q5_0_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q5_0* b = reinterpret_cast<const block_q5_0*>(s);
    const __m256i e16 = _mm256_set1_epi8(16);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const __m256i q = _mm256_or_si256(nibbles32(b[i].qs), qh_bit4(load_u32(b[i].qh)));
        emit32_i8_mul(_mm256_sub_epi8(q, e16), _mm256_set1_ps(f16_to_f32(b[i].d)), y);
    }
}

AVX2 void dequant_q5_1_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q5_1* b = reinterpret_cast<const block_q5_1*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const __m256i q = _mm256_or_si256(nibbles32(b[i].qs), qh_bit4(load_u32(b[i].qh)));
        emit32_u8_muladd(q, _mm256_set1_ps(f16_to_f32(b[i].d)), _mm256_set1_ps(f16_to_f32(b[i].m)), y);
    }
}

// The IQ4 non-linear table as bytes, for a pshufb lookup (same values as kIQ4NL in dequant.cpp).
AVX2 static inline __m256i iq4nl_lookup(__m256i nib) {
    const __m256i kv = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,  //
                                        -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    return _mm256_shuffle_epi8(kv, nib);
}

AVX2 void dequant_iq4_nl_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq4_nl* b = reinterpret_cast<const block_iq4_nl*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32)
        emit32_i8_mul(iq4nl_lookup(nibbles32(b[i].qs)), _mm256_set1_ps(f16_to_f32(b[i].d)), y);
}

AVX2 void dequant_iq4_xs_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq4_xs* b = reinterpret_cast<const block_iq4_xs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int ls = ((b[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b[i].scales_h >> (2 * ib)) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            emit32_i8_mul(iq4nl_lookup(nibbles32(b[i].qs + 16 * ib)), _mm256_set1_ps(dl), y);
        }
    }
}

// ---- Q2_K / Q3_K ----------------------------------------------------------------

// 32 signed bytes -> y[0..15] = d0*q, y[16..31] = d1*q (two groups of 16 with their own scale)
AVX2 static inline void emit2x16_i8_mul(__m256i q, __m256 d0, __m256 d1, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_mul_ps(d0, i8x8_to_ps(lo)));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(d0, i8x8_to_ps(_mm_srli_si128(lo, 8))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(d1, i8x8_to_ps(hi)));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(d1, i8x8_to_ps(_mm_srli_si128(hi, 8))));
}

AVX2 void dequant_q2_K_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q2_K* b = reinterpret_cast<const block_q2_K*>(s);
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (size_t i = 0; i < nb; ++i) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d)), dmin = _mm256_set1_ps(f16_to_f32(b[i].dmin));
        // dl[k] = d*(sc&15), ml[k] = dmin*(sc>>4) for the 16 scale bytes, in f32 as the ref does
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].scales));
        const __m128i slo = _mm_and_si128(sc, m4), shi = _mm_and_si128(_mm_srli_epi16(sc, 4), m4);
        alignas(32) float dl[16], ml[16];
        _mm256_store_ps(dl, _mm256_mul_ps(d, u8x8_to_ps(slo)));
        _mm256_store_ps(dl + 8, _mm256_mul_ps(d, u8x8_to_ps(_mm_srli_si128(slo, 8))));
        _mm256_store_ps(ml, _mm256_mul_ps(dmin, u8x8_to_ps(shi)));
        _mm256_store_ps(ml + 8, _mm256_mul_ps(dmin, u8x8_to_ps(_mm_srli_si128(shi, 8))));
        for (int n = 0; n < 2; ++n) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * n));
            for (int j = 0; j < 4; ++j, y += 32) {
                const int k = 8 * n + 2 * j;
                const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                const __m256 d0 = _mm256_broadcast_ss(dl + k), m0 = _mm256_broadcast_ss(ml + k);
                const __m256 d1 = _mm256_broadcast_ss(dl + k + 1), m1 = _mm256_broadcast_ss(ml + k + 1);
                _mm256_storeu_ps(y + 0, _mm256_sub_ps(_mm256_mul_ps(d0, u8x8_to_ps(lo)), m0));
                _mm256_storeu_ps(y + 8, _mm256_sub_ps(_mm256_mul_ps(d0, u8x8_to_ps(_mm_srli_si128(lo, 8))), m0));
                _mm256_storeu_ps(y + 16, _mm256_sub_ps(_mm256_mul_ps(d1, u8x8_to_ps(hi)), m1));
                _mm256_storeu_ps(y + 24, _mm256_sub_ps(_mm256_mul_ps(d1, u8x8_to_ps(_mm_srli_si128(hi, 8))), m1));
            }
        }
    }
}

AVX2 void dequant_q3_K_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_q3_K* b = reinterpret_cast<const block_q3_K*>(s);
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4), zero = _mm256_setzero_si256();
    for (size_t i = 0; i < nb; ++i) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
        // 16 six-bit scales S_k - 32, then dl[k] = d*S_k in f32
        const uint8_t* sr = b[i].scales;
        alignas(16) int8_t sv[16];
        for (int k = 0; k < 16; ++k) {
            const int low4 = k < 8 ? (sr[k] & 0xF) : (sr[k - 8] >> 4);
            sv[k] = (int8_t)((low4 | (((sr[8 + k % 4] >> (2 * (k / 4))) & 3) << 4)) - 32);
        }
        const __m128i svv = _mm_load_si128(reinterpret_cast<const __m128i*>(sv));
        alignas(32) float dl[16];
        _mm256_store_ps(dl, _mm256_mul_ps(d, i8x8_to_ps(svv)));
        _mm256_store_ps(dl + 8, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(svv, 8))));
        const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].hmask));
        for (int n = 0; n < 2; ++n) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * n));
            for (int j = 0; j < 4; ++j, y += 32) {
                const int k = 8 * n + 2 * j;
                const __m256i m = _mm256_set1_epi8((char)(1u << (4 * n + j)));
                // 4 where the hmask bit is clear, else 0
                const __m256i sub = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, m), zero), four);
                const __m256i v = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3), sub);
                emit2x16_i8_mul(v, _mm256_broadcast_ss(dl + k), _mm256_broadcast_ss(dl + k + 1), y);
            }
        }
    }
}

}  // namespace aprqa
#endif
