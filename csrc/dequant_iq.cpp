// Scalar reference dequantizers for the IQ (codebook) types IQ1_S, IQ1_M, IQ2_XXS,
// IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S. Float order is gguf-py's (and ggml's): the
// block scale first, then `* grid`, then `* sign` (IQ1: `* (grid + delta)`), so the
// results are bit-equal. Grids come from csrc/iq_grids.h (generated from gguf-py).
#include "dequant_iq.h"

#include "blocks.h"
#include "half.h"
#include "iq_grids.h"

namespace aprqa {

static inline uint8_t grid_byte(uint64_t row, int j) { return (uint8_t)(row >> (8 * j)); }
// -1.0f when bit j is set, else +1.0f, built from bits (no branch on random sign data).
static inline float sign_of(uint8_t signs, int j) { return bits_f32(0x3F800000u | (((uint32_t)(signs >> j) & 1u) << 31)); }

// 8 outputs y[j] = db * grid_j * sign_j from one 8-value grid row.
static inline void emit8(float db, uint64_t row, uint8_t signs, float* y) {
    for (int j = 0; j < 8; ++j) y[j] = db * (float)grid_byte(row, j) * sign_of(signs, j);
}

void dequant_iq2_xxs_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq2_xxs* b = reinterpret_cast<const block_iq2_xxs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t idx = load_u32(b[i].qs + 8 * ib), meta = load_u32(b[i].qs + 8 * ib + 4);
            const float db = d * (0.5f + (float)(meta >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8)
                emit8(db, kIQ2XXSGrid[(idx >> (8 * l)) & 0xFF], kIQ2Signs[(meta >> (7 * l)) & 127], y);
        }
    }
}

void dequant_iq2_xs_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq2_xs* b = reinterpret_cast<const block_iq2_xs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const float db[2] = {d * (0.5f + (float)(b[i].scales[ib] & 0xF)) * 0.25f,
                                 d * (0.5f + (float)(b[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t q = load_u16(b[i].qs + 2 * (4 * ib + l));
                emit8(db[l / 2], kIQ2XSGrid[q & 511], kIQ2Signs[q >> 9], y);
            }
        }
    }
}

void dequant_iq2_s_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq2_s* b = reinterpret_cast<const block_iq2_s*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        const uint8_t* signs = b[i].qs + QK_K / 8;
        for (int ib = 0; ib < 8; ++ib) {
            const float db[2] = {d * (0.5f + (float)(b[i].scales[ib] & 0xF)) * 0.25f,
                                 d * (0.5f + (float)(b[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const int idx = b[i].qs[4 * ib + l] | ((b[i].qh[ib] << (8 - 2 * l)) & 0x300);
                emit8(db[l / 2], kIQ2SGrid[idx], signs[4 * ib + l], y);
            }
        }
    }
}

// Two 4-value grid rows as one 8-value row (row1 in the low bytes).
static inline uint64_t join4(uint32_t row1, uint32_t row2) { return (uint64_t)row1 | ((uint64_t)row2 << 32); }

void dequant_iq3_xxs_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq3_xxs* b = reinterpret_cast<const block_iq3_xxs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        const uint8_t* qs = b[i].qs;
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t meta = load_u32(b[i].qs + QK_K / 4 + 4 * ib);
            const float db = d * (0.5f + (float)(meta >> 28)) * 0.5f;
            for (int l = 0; l < 4; ++l, y += 8)
                emit8(db, join4(kIQ3XXSGrid[qs[8 * ib + 2 * l]], kIQ3XXSGrid[qs[8 * ib + 2 * l + 1]]),
                      kIQ2Signs[(meta >> (7 * l)) & 127], y);
        }
    }
}

void dequant_iq3_s_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq3_s* b = reinterpret_cast<const block_iq3_s*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const float db = d * (float)(1 + 2 * ((b[i].scales[ib / 2] >> (4 * (ib % 2))) & 0xF));
            const int qh = b[i].qh[ib];
            for (int l = 0; l < 4; ++l, y += 8) {
                const int i1 = b[i].qs[8 * ib + 2 * l] | ((qh << (8 - 2 * l)) & 256);
                const int i2 = b[i].qs[8 * ib + 2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
                emit8(db, join4(kIQ3SGrid[i1], kIQ3SGrid[i2]), b[i].signs[4 * ib + l], y);
            }
        }
    }
}

// 8 outputs y[j] = dl * (grid_j + delta) from one -1/0/1 grid row (bytes are int8).
static inline void emit8_iq1(float dl, uint64_t row, float delta, float* y) {
    for (int j = 0; j < 8; ++j) y[j] = dl * ((float)(int8_t)grid_byte(row, j) + delta);
}

void dequant_iq1_s_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq1_s* b = reinterpret_cast<const block_iq1_s*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t qh = load_u16(b[i].qh + 2 * ib);
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = iq1_delta(qh >> 15);
            for (int l = 0; l < 4; ++l, y += 8)
                emit8_iq1(dl, kIQ1SGrid[b[i].qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], delta, y);
        }
    }
}

// IQ1_M's f16 super-block scale: the top nibble of each of the four u16 scale words.
uint16_t iq1m_d_bits(const uint8_t* scales) {
    const uint16_t s0 = load_u16(scales), s1 = load_u16(scales + 2), s2 = load_u16(scales + 4),
                   s3 = load_u16(scales + 6);
    return (uint16_t)((s0 >> 12) | ((s1 >> 8) & 0x00F0) | ((s2 >> 4) & 0x0F00) | (s3 & 0xF000));
}

void dequant_iq1_m_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq1_m* b = reinterpret_cast<const block_iq1_m*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(iq1m_d_bits(b[i].scales));
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t sc = load_u16(b[i].scales + 2 * (ib / 2));
            const int shift = 6 * (ib % 2);
            const float dl[2] = {d * (float)(2 * ((sc >> shift) & 7) + 1), d * (float)(2 * ((sc >> (shift + 3)) & 7) + 1)};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t h = b[i].qh[2 * ib + l / 2];
                const int hi = l % 2 ? (h >> 4) : h;  // low nibble for even l, high for odd
                const int idx = b[i].qs[4 * ib + l] | ((hi & 7) << 8);
                emit8_iq1(dl[l / 2], kIQ1SGrid[idx], iq1_delta(hi >> 3), y);
            }
        }
    }
}

}  // namespace aprqa
