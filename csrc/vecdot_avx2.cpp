// SIMD vec_dot kernels: AVX2 (maddubs + madd) and AVX-512 (VL+BW+VNNI: vpdpbusd on 256-bit
// lanes, 32 registers), plus AVX2 row unpackers for the types the common GGUF mixes use.
// Per-function target attributes (never -march=native); called only after the CPU check in
// vecdot.cpp. The integer parts are exact and the float parts repeat vecdot.h's operations
// in its order (explicit intrinsics, fma where vecdot.h says fma), so results equal the scalar reference.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "blocks.h"
#include "dtypes.h"
#include "half.h"
#include "iq4nl.h"
#include "vecdot.h"

namespace aprqa {

#define VD_AVX2 __attribute__((target("avx2,fma,f16c")))

// ---- unpackers (AVX2): q, |q| and the per-16 scales s16 (and mins) of `n` elements -------------

VD_AVX2 static inline void put32(int8_t* q, uint8_t* aq, __m256i v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(aq), _mm256_abs_epi8(v));
}
// 16 packed bytes -> 32 bytes: low nibbles then high nibbles.
VD_AVX2 static inline __m256i nibbles(const uint8_t* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
}
// The 8 lane scales of one chunk: groups a (lanes 0-3) and b (lanes 4-7).
VD_AVX2 static inline void put_s(float* s8, float a, float b) {
    _mm256_storeu_ps(s8, _mm256_set_m128(_mm_set1_ps(b), _mm_set1_ps(a)));
}
VD_AVX2 static inline void put_s(float* s8, float a) { _mm256_storeu_ps(s8, _mm256_set1_ps(a)); }
// f16 -> f32 with F16C (exact; a signalling-NaN scale comes out quiet, a NaN either way)
VD_AVX2 static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// 32 bits -> 32 bytes of 0xFF where the bit is set (bit j -> byte j).
VD_AVX2 static inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
}

// Bits sh, sh+1 of each qh byte, moved to bits 4-5 (Q6_K's high bits).
VD_AVX2 static inline __m256i q6_hi2(__m256i qh, int sh, __m256i m3) {
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(sh)), m3), 4);
}

// One 32-element block of the per-32-scale types as 32 int8 q (the canonical form's values).
VD_AVX2 static inline __m256i q4_0_chunk(const uint8_t* qs) { return _mm256_sub_epi8(nibbles(qs), _mm256_set1_epi8(8)); }
VD_AVX2 static inline __m256i iq4nl_chunk(const uint8_t* qs) {
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NL)));
    return _mm256_shuffle_epi8(tbl, nibbles(qs));
}
VD_AVX2 static inline __m256i q5_0_chunk(const block_q5_0& b) {
    const __m256i hb = _mm256_and_si256(bits_to_bytes(load_u32(b.qh)), _mm256_set1_epi8(0x10));
    return _mm256_sub_epi8(_mm256_or_si256(nibbles(b.qs), hb), _mm256_set1_epi8(16));
}

// Rows are read in order and lie back to back: each block read prefetches the bytes kUnpackAhead
// further on (the rest of this row or the next rows), since decode streams the weights from memory
// and the unpack loops do not run far enough ahead by themselves. (A prefetch never faults.)
constexpr size_t kUnpackAhead = 2048;
VD_AVX2 static inline void prefetch_ahead(const uint8_t* blk, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(blk + kUnpackAhead + o), _MM_HINT_T0);
}

// Writes q, |q|, the expanded lane scales s8 (8 per chunk of 32) and the mins m (per 16).
VD_AVX2 bool unpack_row_simd(int dtype, const uint8_t* src, int64_t n, int8_t* q, uint8_t* aq, float* s, float* m) {
    switch (dtype) {
        case kQ8_0: {
            const block_q8_0* b = reinterpret_cast<const block_q8_0*>(src);
            for (int64_t i = 0; i < n / 32; ++i) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                put32(q + 32 * i, aq + 32 * i, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs)));
                put_s(s + 8 * i, h2f(b[i].d));
            }
            return true;
        }
        case kQ4_0: case kIQ4_NL: {
            const block_q4_0* b = reinterpret_cast<const block_q4_0*>(src);  // iq4_nl: same layout
            for (int64_t i = 0; i < n / 32; ++i) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                put32(q + 32 * i, aq + 32 * i, dtype == kQ4_0 ? q4_0_chunk(b[i].qs) : iq4nl_chunk(b[i].qs));
                put_s(s + 8 * i, h2f(b[i].d));
            }
            return true;
        }
        case kQ5_0: {
            const block_q5_0* b = reinterpret_cast<const block_q5_0*>(src);
            for (int64_t i = 0; i < n / 32; ++i) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                put32(q + 32 * i, aq + 32 * i, q5_0_chunk(b[i]));
                put_s(s + 8 * i, h2f(b[i].d));
            }
            return true;
        }
        case kQ4_K: case kQ5_K: {
            const bool five = dtype == kQ5_K;
            const size_t bb = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
            const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
            for (int64_t i = 0; i < n / 256; ++i, q += 256, aq += 256, s += 64, m += 16) {
                prefetch_ahead(src + i * bb, bb);
                // the two layouts share d, dmin, scales; Q5_K adds qh[32] before qs
                const block_q4_K& b = *reinterpret_cast<const block_q4_K*>(src + i * bb);
                const uint8_t* qs = five ? reinterpret_cast<const block_q5_K*>(src + i * bb)->qs : b.qs;
                const __m256i qh = five ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                              reinterpret_cast<const block_q5_K*>(src + i * bb)->qh))
                                        : _mm256_setzero_si256();
                const float d = h2f(b.d), dmin = h2f(b.dmin);
                for (int j = 0; j < 8; ++j) {
                    int a, mm;
                    k4_scale_min(j, b.scales, a, mm);
                    put_s(s + 8 * j, d * (float)a);
                    m[2 * j] = m[2 * j + 1] = dmin * (float)mm;
                }
                for (int c = 0; c < 4; ++c) {
                    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
                    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    if (five) {  // bit 2c (low nibbles) and 2c+1 (high) of qh[l], as bit 4
                        const __m128i sh0 = _mm_cvtsi32_si128(2 * c), sh1 = _mm_cvtsi32_si128(2 * c + 1);
                        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, sh0), one), 4));
                        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, sh1), one), 4));
                    }
                    put32(q + 64 * c, aq + 64 * c, lo);
                    put32(q + 64 * c + 32, aq + 64 * c + 32, hi);
                }
            }
            return true;
        }
        case kQ2_K: {
            const block_q2_K* b = reinterpret_cast<const block_q2_K*>(src);
            const __m256i m3 = _mm256_set1_epi8(3);
            for (int64_t i = 0; i < n / 256; ++i, q += 256, aq += 256, s += 64, m += 16) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
                for (int g = 0; g < 16; ++g) m[g] = dmin * (float)(b[i].scales[g] >> 4);
                for (int c = 0; c < 8; ++c)
                    put_s(s + 8 * c, d * (float)(b[i].scales[2 * c] & 0xF), d * (float)(b[i].scales[2 * c + 1] & 0xF));
                // chunk c = 4h + j: bits 2j..2j+1 of qs[32h .. 32h+32]
                for (int h = 0; h < 2; ++h) {
                    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * h));
                    for (int j = 0; j < 4; ++j)
                        put32(q + 128 * h + 32 * j, aq + 128 * h + 32 * j,
                              _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * j)), m3));
                }
            }
            return true;
        }
        case kQ3_K: {
            const block_q3_K* b = reinterpret_cast<const block_q3_K*>(src);
            const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), e4 = _mm256_set1_epi8(4);
            for (int64_t i = 0; i < n / 256; ++i, q += 256, aq += 256, s += 64) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                const float d = h2f(b[i].d);
                for (int c = 0; c < 8; ++c)
                    put_s(s + 8 * c, d * (float)q3k_scale(b[i].scales, 2 * c), d * (float)q3k_scale(b[i].scales, 2 * c + 1));
                const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].hmask));
                // chunk c = 4h + j: (bits 2j..2j+1 of qs[32h + l]) | (bit c of hmask[l]) << 2, minus 4
                for (int h = 0; h < 2; ++h) {
                    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * h));
                    for (int j = 0; j < 4; ++j) {
                        const int c = 4 * h + j;
                        const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * j)), m3);
                        const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(c)), one), 2);
                        put32(q + 32 * c, aq + 32 * c, _mm256_sub_epi8(_mm256_or_si256(lo, hb), e4));
                    }
                }
            }
            return true;
        }
        case kIQ4_XS: {
            const block_iq4_xs* b = reinterpret_cast<const block_iq4_xs*>(src);
            const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NL)));
            for (int64_t i = 0; i < n / 256; ++i, q += 256, aq += 256, s += 64) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                const float d = h2f(b[i].d);
                const int sh = b[i].scales_h;  // u16 field (little-endian, as the scalar reads it)
                for (int ib = 0; ib < 8; ++ib) {
                    const int ls = ((b[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
                    put_s(s + 8 * ib, d * (float)(ls - 32));
                    put32(q + 32 * ib, aq + 32 * ib, _mm256_shuffle_epi8(tbl, nibbles(b[i].qs + 16 * ib)));
                }
            }
            return true;
        }
        case kQ6_K: {
            const block_q6_K* b = reinterpret_cast<const block_q6_K*>(src);
            const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), e32 = _mm256_set1_epi8(32);
            for (int64_t i = 0; i < n / 256; ++i, q += 256, aq += 256, s += 64) {
                prefetch_ahead(reinterpret_cast<const uint8_t*>(b + i), sizeof(*b));
                const float d = h2f(b[i].d);
                for (int c = 0; c < 8; ++c) put_s(s + 8 * c, d * (float)b[i].scales[2 * c], d * (float)b[i].scales[2 * c + 1]);
                for (int h = 0; h < 2; ++h) {
                    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].ql + 64 * h));
                    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].ql + 64 * h + 32));
                    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh + 32 * h));
                    const __m256i v[4] = {
                        _mm256_or_si256(_mm256_and_si256(l0, m4), q6_hi2(qh, 0, m3)),
                        _mm256_or_si256(_mm256_and_si256(l1, m4), q6_hi2(qh, 2, m3)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), q6_hi2(qh, 4, m3)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), q6_hi2(qh, 6, m3)),
                    };
                    for (int k = 0; k < 4; ++k) put32(q + 128 * h + 32 * k, aq + 128 * h + 32 * k, _mm256_sub_epi8(v[k], e32));
                }
            }
            return true;
        }
        default:
            return false;  // the scalar unpacker serves the other types
    }
}

// ---- rows to f32 (F16/BF16 rows; quantized rows from their canonical form) ---------------------

VD_AVX2 static void float_rows(int dtype, const uint8_t* w, int rows, int64_t n, float* dst) {
    const int64_t total = rows * n, n8 = total / 8 * 8;
    for (int64_t i = 0; i < n8; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i));
        _mm256_storeu_ps(dst + i, dtype == kF16 ? _mm256_cvtph_ps(h)
                                                : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    }
    for (int64_t i = n8; i < total; ++i)
        dst[i] = dtype == kF16 ? f16_to_f32(load_u16(w + 2 * i)) : bf16_to_f32(load_u16(w + 2 * i));
}
FloatRowsFn float_rows_avx2() { return float_rows; }

VD_AVX2 static void dequant_canon(const int8_t* q, const float* s8, const float* m16, int64_t n, float* dst) {
    for (int64_t g = 0; g < n / 16; ++g) {
        const __m256 s = _mm256_set1_ps(s8[(g / 2) * 8 + (g % 2) * 4]);
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * g));
        __m256 lo = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
        __m256 hi = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))));
        if (m16) {
            const __m256 m = _mm256_set1_ps(m16[g]);
            lo = _mm256_sub_ps(lo, m);
            hi = _mm256_sub_ps(hi, m);
        }
        _mm256_storeu_ps(dst + 16 * g, lo);
        _mm256_storeu_ps(dst + 16 * g + 8, hi);
    }
}
DequantCanonFn dequant_canon_avx2() { return dequant_canon; }

// ---- the integer tile, once per target --------------------------------------------------------

#define VD_TARGET VD_AVX2
#define VD_NS avx2
#define VD_TOK 2
#define VD_FTOK 2
#define VD_DOT(aw, sx) _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1))
#include "vecdot_tile.inc"
#undef VD_TARGET
#undef VD_NS
#undef VD_TOK
#undef VD_FTOK
#undef VD_DOT

#define VD_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#define VD_NS avx512
#define VD_TOK 4
#define VD_FTOK 4
#define VD_DOT(aw, sx) _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx)
#include "vecdot_tile.inc"
#undef VD_TARGET
#undef VD_NS
#undef VD_TOK
#undef VD_FTOK
#undef VD_DOT

// ---- decode straight from the blocks (per-32-scale types) × f32 activations ---------------------
// For Q8_0/Q4_0/IQ4_NL/Q5_0 the canonical form is one block's 32 q and its scale: each block is
// decoded in registers and multiplied as canon_tile does (w = s*q, then fma into lane i % 8, in
// element order), so the result is canon_tile's bit for bit, without the unpacked row buffers.

template <int D>
VD_AVX2 static inline __m256i chunk_q(const uint8_t* blk) {
    if constexpr (D == kQ8_0) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    else if constexpr (D == kQ4_0) return q4_0_chunk(blk + 2);
    else if constexpr (D == kIQ4_NL) return iq4nl_chunk(blk + 2);
    else return q5_0_chunk(*reinterpret_cast<const block_q5_0*>(blk));
}

template <int D, int R>
VD_AVX2 static void direct_tile(const uint8_t* w, size_t row_bytes, int64_t n, const float* x, int64_t t, float* out,
                                int64_t ldo) {
    constexpr size_t bb = D == kQ8_0 ? sizeof(block_q8_0) : D == kQ5_0 ? sizeof(block_q5_0) : sizeof(block_q4_0);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const float* xt = x + t * n;
    // the next tile's rows (contiguous, R*row_bytes from here) are prefetched at the pace this tile is
    // read: R blocks per chunk; weights stream from memory at decode and the loop is too busy to run ahead
    const uint8_t* next = w + R * row_bytes;
    for (int64_t c = 0; c < n / 32; ++c) {
        for (size_t o = 0; o < R * bb; o += 64) _mm_prefetch(reinterpret_cast<const char*>(next + c * R * bb + o), _MM_HINT_T0);
        __m256 xv[4];
        for (int j = 0; j < 4; ++j) xv[j] = _mm256_loadu_ps(xt + 32 * c + 8 * j);
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * row_bytes + c * bb;  // every one of these blocks starts with its f16 d
            const __m256i v = chunk_q<D>(blk);
            const __m256 sv = _mm256_set1_ps(h2f(load_u16(blk)));
            const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
            const __m128i part[4] = {lo, _mm_unpackhi_epi64(lo, lo), hi, _mm_unpackhi_epi64(hi, hi)};
            for (int j = 0; j < 4; ++j)
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(sv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[j]))), xv[j],
                                         acc[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[t * ldo + r] = avx2::fold(acc[r]);
}

template <int D>
VD_AVX2 static void direct_any(int rows, const uint8_t* w, size_t row_bytes, int64_t n, const float* x, int64_t tokens,
                               float* out, int64_t ldo) {
    for (int64_t t = 0; t < tokens; ++t) switch (rows) {
            case 4: direct_tile<D, 4>(w, row_bytes, n, x, t, out, ldo); break;
            case 3: direct_tile<D, 3>(w, row_bytes, n, x, t, out, ldo); break;
            case 2: direct_tile<D, 2>(w, row_bytes, n, x, t, out, ldo); break;
            default: direct_tile<D, 1>(w, row_bytes, n, x, t, out, ldo); break;
        }
}

DirectTileFn direct_tile_avx2(int dtype) {
    switch (dtype) {
        case kQ8_0: return direct_any<kQ8_0>;
        case kQ4_0: return direct_any<kQ4_0>;
        case kIQ4_NL: return direct_any<kIQ4_NL>;
        case kQ5_0: return direct_any<kQ5_0>;
        default: return nullptr;
    }
}
TileFn tile_avx2() { return avx2::tile_any; }
TileFn tile_avx512() { return avx512::tile_any; }
F32TileFn f32_tile_avx2() { return avx2::f32_tile_any; }
F32TileFn f32_tile_avx512() { return avx512::f32_tile_any; }
CanonTileFn canon_tile_avx2() { return avx2::canon_tile_any; }
CanonTileFn canon_tile_avx512() { return avx512::canon_tile_any; }

}  // namespace aprqa
#endif
