// Quantized block layouts, one struct per type, little-endian, no padding.
// Each struct has a size static_assert and a two-line comment: the decode
// formula, then the bits per weight. Facts from docs/format-facts.md §2
// (GGML) and §1 (APR); field order is the on-disk order.
#pragma once
#include <cstdint>

namespace aprqa {

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
constexpr int QK_K = 256, QK4_NL = 32, QK_MXFP4 = 32, QK_APR4 = 32;
constexpr int K_SCALE_SIZE = 12;
constexpr int QK1_0 = 128, QK2_0 = 64, QK_NVFP4 = 64, QK_NVFP4_SUB = 16;

#pragma pack(push, 1)

// Q4_0: y[j] = d*(lo(qs[j])-8), y[j+16] = d*(hi(qs[j])-8).
// 4.5 bits per weight (f16 scale per 32).
struct block_q4_0 { uint16_t d; uint8_t qs[QK4_0 / 2]; };
static_assert(sizeof(block_q4_0) == 18, "q4_0 block size");

// Q4_1: y = d*q + m with q = lo/hi nibble as in Q4_0 (no -8).
// 5 bits per weight.
struct block_q4_1 { uint16_t d; uint16_t m; uint8_t qs[QK4_1 / 2]; };
static_assert(sizeof(block_q4_1) == 20, "q4_1 block size");

// Q5_0: q = nibble | ((qh >> j) & 1) << 4, y = d*(q-16); qh is a u32 LE.
// 5.5 bits per weight.
struct block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
static_assert(sizeof(block_q5_0) == 22, "q5_0 block size");

// Q5_1: as Q5_0 without the -16, y = d*q + m.
// 6 bits per weight.
struct block_q5_1 { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
static_assert(sizeof(block_q5_1) == 24, "q5_1 block size");

// Q8_0: y[j] = d*qs[j], qs signed.
// 8.5 bits per weight.
struct block_q8_0 { uint16_t d; int8_t qs[QK8_0]; };
static_assert(sizeof(block_q8_0) == 34, "q8_0 block size");

// Q8_1 (C layout): y[j] = d*qs[j]; s = d*sum(qs) is ignored by the decoder.
// 9 bits per weight.
struct block_q8_1 { uint16_t d; uint16_t s; int8_t qs[QK8_1]; };
static_assert(sizeof(block_q8_1) == 36, "q8_1 block size");

// Q2_K: 16 groups of 16, scale byte sc: y = (d*(sc&15))*q2 - dmin*(sc>>4).
// 2.625 bits per weight.
struct block_q2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d; uint16_t dmin; };
static_assert(sizeof(block_q2_K) == 84, "q2_k block size");

// Q3_K: y = (d*(S-32)) * (q2 - (hmask bit ? 0 : 4)), S a 6-bit scale from scales[12].
// 3.4375 bits per weight.
struct block_q3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
static_assert(sizeof(block_q3_K) == 110, "q3_k block size");

// Q4_K: 8 sub-blocks of 32 with 6-bit sc/m: y = (d*sc)*q4 - (dmin*m).
// 4.5 bits per weight.
struct block_q4_K { uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
static_assert(sizeof(block_q4_K) == 144, "q4_k block size");

// Q5_K: as Q4_K with a fifth bit from qh: y = (d*sc)*q5 - (dmin*m).
// 5.5 bits per weight.
struct block_q5_K {
    uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176, "q5_k block size");

// Q6_K: q = (ql nibble | 2 bits of qh << 4) - 32, y = (d*scales[k])*q, k = 16 outputs per scale.
// 6.5625 bits per weight.
struct block_q6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
static_assert(sizeof(block_q6_K) == 210, "q6_k block size");

// Q8_K (activation type): y = d*qs with d an f32; bsums ignored.
// 9.125 bits per weight.
struct block_q8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
static_assert(sizeof(block_q8_K) == 292, "q8_k block size");

// IQ4_NL: y[j] = d*kv[lo(qs[j])], y[j+16] = d*kv[hi(qs[j])], kv the 16-entry non-linear table.
// 4.5 bits per weight.
struct block_iq4_nl { uint16_t d; uint8_t qs[QK4_NL / 2]; };
static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl block size");

// IQ4_XS: 8 sub-blocks of 32, 6-bit ls from scales_l/scales_h: y = (d*(ls-32))*kv[nibble].
// 4.25 bits per weight.
struct block_iq4_xs { uint16_t d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; };
static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs block size");

// IQ2_XXS: per 32: two u32 (4 grid indices as bytes; 4x7 sign-index bits + 4-bit scale s in the top):
// y = (d*(0.5+s)*0.25)*grid[j]*sign. 2.0625 bits per weight. (u16/u32 fields are stored as bytes.)
struct block_iq2_xxs { uint16_t d; uint8_t qs[QK_K / 4]; };
static_assert(sizeof(block_iq2_xxs) == 66, "iq2_xxs block size");

// IQ2_XS: u16 q = 9-bit grid index | 7-bit sign index << 9; 4-bit scales per 16: y = (d*(0.5+s)*0.25)*grid*sign.
// 2.3125 bits per weight.
struct block_iq2_xs { uint16_t d; uint8_t qs[QK_K / 4]; uint8_t scales[QK_K / 32]; };
static_assert(sizeof(block_iq2_xs) == 74, "iq2_xs block size");

// IQ2_S: 10-bit grid index (qs byte | 2 bits of qh), explicit sign bytes after the indices.
// 2.5625 bits per weight.
struct block_iq2_s { uint16_t d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; };
static_assert(sizeof(block_iq2_s) == 82, "iq2_s block size");

// IQ3_XXS: 64 grid indices (4 values each), then per 32 a u32 of 4x7 sign-index bits + 4-bit scale:
// y = (d*(0.5+s)*0.5)*grid*sign. 3.0625 bits per weight.
struct block_iq3_xxs { uint16_t d; uint8_t qs[3 * QK_K / 8]; };
static_assert(sizeof(block_iq3_xxs) == 98, "iq3_xxs block size");

// IQ3_S: 9-bit grid index (qs byte | 1 bit of qh), sign bytes, 4-bit scales: y = (d*(1+2s))*grid*sign.
// 3.4375 bits per weight.
struct block_iq3_s {
    uint16_t d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t signs[QK_K / 8]; uint8_t scales[QK_K / 64];
};
static_assert(sizeof(block_iq3_s) == 110, "iq3_s block size");

// IQ1_S: 11-bit index into a -1/0/1 grid; per 32 a u16 qh (3 high index bits x4, 3-bit scale, delta sign):
// y = (d*(2s+1))*(grid +- 0.125). 1.5625 bits per weight.
struct block_iq1_s { uint16_t d; uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; };
static_assert(sizeof(block_iq1_s) == 50, "iq1_s block size");

// IQ1_M: as IQ1_S with a delta sign per 8 and 3-bit scales per 16; the f16 d is the top nibbles
// of the four u16 scale words. 1.75 bits per weight.
struct block_iq1_m { uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; uint8_t scales[QK_K / 32]; };
static_assert(sizeof(block_iq1_m) == 56, "iq1_m block size");

// TQ1_0: base-3 digits packed 5 (or 4) per byte: t = ((uint8)(q*3^n) * 3) >> 8, y = d*(t-1).
// 1.6875 bits per weight.
struct block_tq1_0 { uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; uint16_t d; };
static_assert(sizeof(block_tq1_0) == 54, "tq1_0 block size");

// TQ2_0: 2-bit fields, y = d*(((qs[32c+l] >> 2k) & 3) - 1), output 128n+32k+l.
// 2.0625 bits per weight.
struct block_tq2_0 { uint8_t qs[QK_K / 4]; uint16_t d; };
static_assert(sizeof(block_tq2_0) == 66, "tq2_0 block size");

// MXFP4: e = E8M0 exponent, d = 2^(e-128) (half the E8M0 value): y = d*kv_e2m1x2[nibble].
// 4.25 bits per weight.
struct block_mxfp4 { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; };
static_assert(sizeof(block_mxfp4) == 17, "mxfp4 block size");

// NVFP4: four UE4M3 sub-block scales (one per 16), then E2M1 nibbles per sub-block as in MXFP4
// (lo nibbles the first 8, hi nibbles the last 8): y = ue4m3(d[s])/2 * kv_e2m1x2[nibble]. 4.5 bits per weight.
struct block_nvfp4 { uint8_t d[QK_NVFP4 / QK_NVFP4_SUB]; uint8_t qs[QK_NVFP4 / 2]; };
static_assert(sizeof(block_nvfp4) == 36, "nvfp4 block size");

// Q1_0: bit j of qs (LSB first) selects y[j] = +d (1) or -d (0).
// 1.125 bits per weight (f16 scale per 128).
struct block_q1_0 { uint16_t d; uint8_t qs[QK1_0 / 8]; };
static_assert(sizeof(block_q1_0) == 18, "q1_0 block size");

// Q2_0: q = 2-bit field j of qs (LSB first, four per byte), y[j] = d*(q-1) ∈ {-d, 0, d, 2d}.
// 2.25 bits per weight (f16 scale per 64).
struct block_q2_0 { uint16_t d; uint8_t qs[QK2_0 / 4]; };
static_assert(sizeof(block_q2_0) == 18, "q2_0 block size");

// APR q4 (dtype 128): element i is lo nibble of qs[i/2] when i even, hi when odd: y = (nib-8)*d.
// 4.5 bits per weight; the tensor's last block is zero-padded.
struct block_apr_q4 { uint16_t d; uint8_t qs[QK_APR4 / 2]; };
static_assert(sizeof(block_apr_q4) == 18, "apr_q4 block size");

#pragma pack(pop)

// APR q8 (dtype 129) has no blocks: one f32 scale for the whole tensor, then N int8; y = q*scale.
// 8 bits per weight + 32 bits per tensor.
constexpr int APR_Q8_HEADER_BYTES = 4;

}  // namespace aprqa
