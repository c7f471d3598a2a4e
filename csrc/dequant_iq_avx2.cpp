// AVX2+F16C variants of the IQ dequantizers in dequant_iq.cpp. Per 8 outputs: one
// grid row (8 bytes) widened to f32, times the block scale, times a +-1 vector built
// from the sign byte - the same f32 multiplies in the same order as the _ref kernels
// (explicit mul/add intrinsics, no FMA), so the results are bit-equal.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "blocks.h"
#include "dequant_iq.h"
#include "half.h"
#include "iq_grids.h"

#define AVX2 __attribute__((target("avx2,f16c")))

namespace aprqa {

// Grid row bytes -> 8 f32 (unsigned values for IQ2/IQ3 grids, int8 for IQ1).
AVX2 static inline __m256 row_u8(uint64_t row) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)row)));
}
AVX2 static inline __m256 row_i8(uint64_t row) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128((long long)row)));
}
// Sign byte -> lane j = -1.0f when bit j is set, else +1.0f.
AVX2 static inline __m256 sign_vec(uint8_t signs) {
    const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(signs), bits), bits);
    return _mm256_blendv_ps(_mm256_set1_ps(1.f), _mm256_set1_ps(-1.f), _mm256_castsi256_ps(set));
}
AVX2 static inline void emit8(__m256 db, uint64_t row, uint8_t signs, float* y) {
    _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_mul_ps(db, row_u8(row)), sign_vec(signs)));
}
AVX2 static inline void emit8_iq1(__m256 dl, uint64_t row, float delta, float* y) {
    _mm256_storeu_ps(y, _mm256_mul_ps(dl, _mm256_add_ps(row_i8(row), _mm256_set1_ps(delta))));
}
static inline uint64_t join4(uint32_t row1, uint32_t row2) { return (uint64_t)row1 | ((uint64_t)row2 << 32); }

AVX2 void dequant_iq2_xxs_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq2_xxs* b = reinterpret_cast<const block_iq2_xxs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t idx = load_u32(b[i].qs + 8 * ib), meta = load_u32(b[i].qs + 8 * ib + 4);
            const __m256 db = _mm256_set1_ps(d * (0.5f + (float)(meta >> 28)) * 0.25f);
            for (int l = 0; l < 4; ++l, y += 8)
                emit8(db, kIQ2XXSGrid[(idx >> (8 * l)) & 0xFF], kIQ2Signs[(meta >> (7 * l)) & 127], y);
        }
    }
}

AVX2 void dequant_iq2_xs_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq2_xs* b = reinterpret_cast<const block_iq2_xs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const __m256 db[2] = {_mm256_set1_ps(d * (0.5f + (float)(b[i].scales[ib] & 0xF)) * 0.25f),
                                  _mm256_set1_ps(d * (0.5f + (float)(b[i].scales[ib] >> 4)) * 0.25f)};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t q = load_u16(b[i].qs + 2 * (4 * ib + l));
                emit8(db[l / 2], kIQ2XSGrid[q & 511], kIQ2Signs[q >> 9], y);
            }
        }
    }
}

AVX2 void dequant_iq2_s_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq2_s* b = reinterpret_cast<const block_iq2_s*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        const uint8_t* signs = b[i].qs + QK_K / 8;
        for (int ib = 0; ib < 8; ++ib) {
            const __m256 db[2] = {_mm256_set1_ps(d * (0.5f + (float)(b[i].scales[ib] & 0xF)) * 0.25f),
                                  _mm256_set1_ps(d * (0.5f + (float)(b[i].scales[ib] >> 4)) * 0.25f)};
            for (int l = 0; l < 4; ++l, y += 8) {
                const int idx = b[i].qs[4 * ib + l] | ((b[i].qh[ib] << (8 - 2 * l)) & 0x300);
                emit8(db[l / 2], kIQ2SGrid[idx], signs[4 * ib + l], y);
            }
        }
    }
}

AVX2 void dequant_iq3_xxs_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq3_xxs* b = reinterpret_cast<const block_iq3_xxs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        const uint8_t* qs = b[i].qs;
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t meta = load_u32(b[i].qs + QK_K / 4 + 4 * ib);
            const __m256 db = _mm256_set1_ps(d * (0.5f + (float)(meta >> 28)) * 0.5f);
            for (int l = 0; l < 4; ++l, y += 8)
                emit8(db, join4(kIQ3XXSGrid[qs[8 * ib + 2 * l]], kIQ3XXSGrid[qs[8 * ib + 2 * l + 1]]),
                      kIQ2Signs[(meta >> (7 * l)) & 127], y);
        }
    }
}

AVX2 void dequant_iq3_s_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq3_s* b = reinterpret_cast<const block_iq3_s*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const __m256 db = _mm256_set1_ps(d * (float)(1 + 2 * ((b[i].scales[ib / 2] >> (4 * (ib % 2))) & 0xF)));
            const int qh = b[i].qh[ib];
            for (int l = 0; l < 4; ++l, y += 8) {
                const int i1 = b[i].qs[8 * ib + 2 * l] | ((qh << (8 - 2 * l)) & 256);
                const int i2 = b[i].qs[8 * ib + 2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
                emit8(db, join4(kIQ3SGrid[i1], kIQ3SGrid[i2]), b[i].signs[4 * ib + l], y);
            }
        }
    }
}

AVX2 void dequant_iq1_s_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq1_s* b = reinterpret_cast<const block_iq1_s*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t qh = load_u16(b[i].qh + 2 * ib);
            const __m256 dl = _mm256_set1_ps(d * (float)(2 * ((qh >> 12) & 7) + 1));
            const float delta = iq1_delta(qh >> 15);
            for (int l = 0; l < 4; ++l, y += 8)
                emit8_iq1(dl, kIQ1SGrid[b[i].qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], delta, y);
        }
    }
}

AVX2 void dequant_iq1_m_avx2(const uint8_t* s, float* y, size_t nb) {
    const block_iq1_m* b = reinterpret_cast<const block_iq1_m*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(iq1m_d_bits(b[i].scales));
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t sc = load_u16(b[i].scales + 2 * (ib / 2));
            const int shift = 6 * (ib % 2);
            const __m256 dl[2] = {_mm256_set1_ps(d * (float)(2 * ((sc >> shift) & 7) + 1)),
                                  _mm256_set1_ps(d * (float)(2 * ((sc >> (shift + 3)) & 7) + 1))};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t h = b[i].qh[2 * ib + l / 2];
                const int hi = l % 2 ? (h >> 4) : h;
                emit8_iq1(dl[l / 2], kIQ1SGrid[b[i].qs[4 * ib + l] | ((hi & 7) << 8)], iq1_delta(hi >> 3), y);
            }
        }
    }
}

}  // namespace aprqa
#endif
