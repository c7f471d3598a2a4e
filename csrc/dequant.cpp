// Scalar reference dequantizers (`dequant_<type>_ref`) and the dispatch (the kernel columns of dtypes.h).
// Float evaluation order follows docs/format-facts.md §2 exactly (scale
// product first, then `* q`, then `- min` / `+ m`); -ffp-contract=off keeps
// the compiler from fusing it, so these are bit-exact with ggml and gguf-py.
#include "dequant.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "blocks.h"
#include "dequant_iq.h"
#include "dtypes.h"
#include "half.h"
#include "iq4nl.h"

namespace aprqa {

static const int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// ---- plain types -------------------------------------------------------------

static void dequant_f32_ref(const uint8_t* s, float* y, size_t n) { std::memcpy(y, s, n * 4); }
static void dequant_f16_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = f16_to_f32(load_u16(s + 2 * i));
}
static void dequant_bf16_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_u16(s + 2 * i));
}
static void dequant_f64_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, s + 8 * i, 8);
        y[i] = (float)v;
    }
}
template <typename T>
static void dequant_int_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, s + sizeof(T) * i, sizeof(T));
        y[i] = (float)v;
    }
}
static void dequant_bool_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = s[i] ? 1.0f : 0.0f;
}
// OCP E4M3 "fn": no infinities, S.1111.111 is NaN; subnormals m * 2^-9.
static void dequant_f8_e4m3_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        uint32_t b = s[i], sign = (b & 0x80u) << 24, e = (b >> 3) & 0xfu, m = b & 7u;
        if (e == 15 && m == 7) y[i] = bits_f32(sign | 0x7fc00000u);
        else if (e == 0) y[i] = bits_f32(sign | f32_bits((float)m * 0.001953125f));
        else y[i] = bits_f32(sign | ((e + 120u) << 23) | (m << 20));
    }
}
// E5M2 is the top byte of an IEEE half.
static void dequant_f8_e5m2_ref(const uint8_t* s, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = f16_to_f32((uint16_t)(s[i] << 8));
}

// ---- legacy 32-element blocks ------------------------------------------------

static void dequant_q4_0_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q4_0* b = reinterpret_cast<const block_q4_0*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)((b[i].qs[j] & 0xF) - 8);
            y[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}
static void dequant_q4_1_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q4_1* b = reinterpret_cast<const block_q4_1*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)(b[i].qs[j] & 0xF) + m;
            y[j + 16] = d * (float)(b[i].qs[j] >> 4) + m;
        }
    }
}
static void dequant_q5_0_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q5_0* b = reinterpret_cast<const block_q5_0*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d);
        const uint32_t qh = load_u32(b[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int q0 = (int)((b[i].qs[j] & 0xF) | (((qh >> j) & 1u) << 4)) - 16;
            const int q1 = (int)((b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            y[j] = d * (float)q0;
            y[j + 16] = d * (float)q1;
        }
    }
}
static void dequant_q5_1_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q5_1* b = reinterpret_cast<const block_q5_1*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        const uint32_t qh = load_u32(b[i].qh);
        for (int j = 0; j < 16; ++j) {
            const uint32_t q0 = (b[i].qs[j] & 0xF) | (((qh >> j) & 1u) << 4);
            const uint32_t q1 = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
            y[j] = d * (float)q0 + m;
            y[j + 16] = d * (float)q1 + m;
        }
    }
}
static void dequant_q8_0_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q8_0* b = reinterpret_cast<const block_q8_0*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 32; ++j) y[j] = (float)b[i].qs[j] * d;
    }
}
static void dequant_q8_1_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q8_1* b = reinterpret_cast<const block_q8_1*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 32; ++j) y[j] = (float)b[i].qs[j] * d;
    }
}
static void dequant_iq4_nl_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq4_nl* b = reinterpret_cast<const block_iq4_nl*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)kIQ4NL[b[i].qs[j] & 0xF];
            y[j + 16] = d * (float)kIQ4NL[b[i].qs[j] >> 4];
        }
    }
}
static inline float e8m0_to_f32_half(uint8_t e) {
    return bits_f32(e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23));
}
static void dequant_mxfp4_ref(const uint8_t* s, float* y, size_t nb) {
    const block_mxfp4* b = reinterpret_cast<const block_mxfp4*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = e8m0_to_f32_half(b[i].e);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)kMxfp4Values[b[i].qs[j] & 0xF];
            y[j + 16] = d * (float)kMxfp4Values[b[i].qs[j] >> 4];
        }
    }
}
// UE4M3 (unsigned E4M3, bias 7) at half its value, as ggml decodes NVFP4 scales; 0x00 and 0x7F are 0.
static inline float ue4m3_to_f32_half(uint8_t x) {
    if (x == 0 || x == 0x7F) return 0.0f;
    const int e = (x >> 3) & 0xF, m = x & 7;
    // subnormal m·2^-9, normal (1 + m/8)·2^(e-7); both exact in f32, then halved (exact)
    const float raw = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + (float)m / 8.0f, e - 7);
    return raw * 0.5f;
}
static void dequant_nvfp4_ref(const uint8_t* s, float* y, size_t nb) {
    const block_nvfp4* b = reinterpret_cast<const block_nvfp4*>(s);
    for (size_t i = 0; i < nb; ++i) {
        for (int sb = 0; sb < QK_NVFP4 / QK_NVFP4_SUB; ++sb, y += QK_NVFP4_SUB) {
            const float d = ue4m3_to_f32_half(b[i].d[sb]);
            const uint8_t* q = b[i].qs + sb * (QK_NVFP4_SUB / 2);
            for (int j = 0; j < QK_NVFP4_SUB / 2; ++j) {
                y[j] = (float)kMxfp4Values[q[j] & 0xF] * d;
                y[j + QK_NVFP4_SUB / 2] = (float)kMxfp4Values[q[j] >> 4] * d;
            }
        }
    }
}
static void dequant_q1_0_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q1_0* b = reinterpret_cast<const block_q1_0*>(s);
    for (size_t i = 0; i < nb; ++i, y += QK1_0) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK1_0; ++j) y[j] = ((b[i].qs[j >> 3] >> (j & 7)) & 1) ? d : -d;
    }
}
static void dequant_q2_0_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q2_0* b = reinterpret_cast<const block_q2_0*>(s);
    for (size_t i = 0; i < nb; ++i, y += QK2_0) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK2_0; ++j) y[j] = (float)((int)((b[i].qs[j >> 2] >> (2 * (j & 3))) & 3) - 1) * d;
    }
}
static void dequant_apr_q4_ref(const uint8_t* s, float* y, size_t nb) {
    const block_apr_q4* b = reinterpret_cast<const block_apr_q4*>(s);
    for (size_t i = 0; i < nb; ++i, y += 32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; ++j) {
            y[2 * j] = (float)((b[i].qs[j] & 0xF) - 8) * d;
            y[2 * j + 1] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

// ---- K-quants (256-element super-blocks) -----------------------------------

static void dequant_q2_K_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q2_K* b = reinterpret_cast<const block_q2_K*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        int is = 0;
        for (int n = 0; n < 2; ++n, q += 32) {
            for (int j = 0; j < 4; ++j) {
                const int shift = 2 * j;
                for (int g = 0; g < 2; ++g) {
                    const uint8_t sc = b[i].scales[is++];
                    const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * (float)((q[l + 16 * g] >> shift) & 3) - ml;
                }
            }
        }
    }
}
static inline int q3k_scale(const uint8_t* sc, int i) {
    const int low4 = i < 8 ? (sc[i] & 0xF) : (sc[i - 8] >> 4);
    const int high2 = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low4 | (high2 << 4)) - 32;
}
static void dequant_q3_K_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q3_K* b = reinterpret_cast<const block_q3_K*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        const uint8_t* q = b[i].qs;
        int is = 0;
        for (int n = 0; n < 2; ++n, q += 32) {
            for (int j = 0; j < 4; ++j) {
                const int shift = 2 * j;
                const uint8_t m = (uint8_t)(1u << (4 * n + j));
                for (int g = 0; g < 2; ++g) {
                    const float dl = d * (float)q3k_scale(b[i].scales, is++);
                    for (int l = 0; l < 16; ++l) {
                        const int li = l + 16 * g;
                        const int v = ((q[li] >> shift) & 3) - ((b[i].hmask[li] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}
static inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}
static void dequant_q4_K_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q4_K* b = reinterpret_cast<const block_q4_K*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        for (int c = 0; c < 4; ++c, q += 32) {
            uint8_t sc, m;
            get_scale_min_k4(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            get_scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; ++l) y[l] = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) y[32 + l] = d2 * (float)(q[l] >> 4) - m2;
            y += 64;
        }
    }
}
static void dequant_q5_K_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q5_K* b = reinterpret_cast<const block_q5_K*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        for (int c = 0; c < 4; ++c, q += 32) {
            uint8_t sc, m;
            get_scale_min_k4(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            get_scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; ++l) {
                const int v = (q[l] & 0xF) + (((b[i].qh[l] >> (2 * c)) & 1) << 4);
                y[l] = d1 * (float)v - m1;
            }
            for (int l = 0; l < 32; ++l) {
                const int v = (q[l] >> 4) + (((b[i].qh[l] >> (2 * c + 1)) & 1) << 4);
                y[32 + l] = d2 * (float)v - m2;
            }
            y += 64;
        }
    }
}
static void dequant_q6_K_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q6_K* b = reinterpret_cast<const block_q6_K*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int n = 0; n < 2; ++n, y += 128) {
            const uint8_t* ql = b[i].ql + 64 * n;
            const uint8_t* qh = b[i].qh + 32 * n;
            const int8_t* sc = b[i].scales + 8 * n;
            float ds[8];
            for (int k = 0; k < 8; ++k) ds[k] = d * (float)sc[k];
            for (int l = 0; l < 32; ++l) {
                const int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = ds[l / 16] * (float)q1;
                y[l + 32] = ds[2 + l / 16] * (float)q2;
                y[l + 64] = ds[4 + l / 16] * (float)q3;
                y[l + 96] = ds[6 + l / 16] * (float)q4;
            }
        }
    }
}
static void dequant_q8_K_ref(const uint8_t* s, float* y, size_t nb) {
    const block_q8_K* b = reinterpret_cast<const block_q8_K*>(s);
    for (size_t i = 0; i < nb; ++i, y += 256) {
        float d;
        std::memcpy(&d, &b[i].d, 4);
        for (int j = 0; j < 256; ++j) y[j] = d * (float)b[i].qs[j];
    }
}
static void dequant_iq4_xs_ref(const uint8_t* s, float* y, size_t nb) {
    const block_iq4_xs* b = reinterpret_cast<const block_iq4_xs*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int ls = ((b[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b[i].scales_h >> (2 * ib)) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            const uint8_t* q = b[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * (float)kIQ4NL[q[j] & 0xF];
                y[j + 16] = dl * (float)kIQ4NL[q[j] >> 4];
            }
        }
    }
}
static void dequant_tq2_0_ref(const uint8_t* s, float* y, size_t nb) {
    const block_tq2_0* b = reinterpret_cast<const block_tq2_0*>(s);
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int n = 0; n < 2; ++n)
            for (int k = 0; k < 4; ++k)
                for (int l = 0; l < 32; ++l) *y++ = d * (float)(((b[i].qs[32 * n + l] >> (2 * k)) & 3) - 1);
    }
}
static void dequant_tq1_0_ref(const uint8_t* s, float* y, size_t nb) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const block_tq1_0* b = reinterpret_cast<const block_tq1_0*>(s);
    auto trit = [](uint8_t q, uint8_t p) { return (int)(((uint16_t)(uint8_t)(q * p) * 3) >> 8) - 1; };
    for (size_t i = 0; i < nb; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int n = 0; n < 5; ++n)
            for (int m = 0; m < 32; ++m) *y++ = d * (float)trit(b[i].qs[m], pow3[n]);
        for (int n = 0; n < 5; ++n)
            for (int m = 0; m < 16; ++m) *y++ = d * (float)trit(b[i].qs[32 + m], pow3[n]);
        for (int n = 0; n < 4; ++n)
            for (int m = 0; m < 4; ++m) *y++ = d * (float)trit(b[i].qh[m], pow3[n]);
    }
}

// ---- SIMD variants (dequant_avx2.cpp) ----------------------------------------
#if defined(__x86_64__) || defined(_M_X64)
void dequant_f16_avx2(const uint8_t*, float*, size_t);
void dequant_q4_0_avx2(const uint8_t*, float*, size_t);
void dequant_q4_1_avx2(const uint8_t*, float*, size_t);
void dequant_q5_0_avx2(const uint8_t*, float*, size_t);
void dequant_q5_1_avx2(const uint8_t*, float*, size_t);
void dequant_q8_0_avx2(const uint8_t*, float*, size_t);
void dequant_q2_K_avx2(const uint8_t*, float*, size_t);
void dequant_q3_K_avx2(const uint8_t*, float*, size_t);
void dequant_q4_K_avx2(const uint8_t*, float*, size_t);
void dequant_q5_K_avx2(const uint8_t*, float*, size_t);
void dequant_q6_K_avx2(const uint8_t*, float*, size_t);
void dequant_iq4_nl_avx2(const uint8_t*, float*, size_t);
void dequant_iq4_xs_avx2(const uint8_t*, float*, size_t);
#define SIMD(f) f
#else
#define SIMD(f) nullptr
#endif

// apr_q8 has no block kernel: dequant_range decodes it with its tensor-wide scale.
static constexpr std::nullptr_t tensor_scale = nullptr;

DequantKernel dequant_kernel(int dtype) {
    switch (dtype) {  // the kernel columns of csrc/dtypes.h's rows
#define APRQA_X(sym, id, name, block_elems, block_bytes, ref, simd, ...) \
    case k##sym: return {ref, SIMD(simd)};
        APRQA_DTYPES(APRQA_X)
#undef APRQA_X
        default: return {nullptr, nullptr};
    }
}

bool dequant_supported(int dtype) { return dtype == kAprQ8 || dequant_kernel(dtype).ref != nullptr; }

void require_dequant(int dtype) {
    const DTypeTraits& t = dtype_or_throw(dtype);
    if (!dequant_supported(dtype))
        throw dtype_error(std::string("unsupported dtype ") + t.name + " for dequantization");
}

// ---- SIMD selection ------------------------------------------------------------

static bool detect_simd() {
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}
static const bool g_simd_available = detect_simd();
static std::atomic<bool> g_simd_on{[] {
    const char* e = std::getenv("APRQA_NO_SIMD");
    return !(e && *e && std::strcmp(e, "0") != 0);
}()};

bool simd_available() { return g_simd_available; }
bool simd_enabled() { return g_simd_available && g_simd_on.load(std::memory_order_relaxed); }
void set_simd(bool on) { g_simd_on.store(on, std::memory_order_relaxed); }
std::string simd_level() { return simd_enabled() ? "avx2" : "scalar"; }

// ---- sizes and ranges ----------------------------------------------------------

size_t storage_bytes(int dtype, uint64_t n) {
    if (dtype != kAprQ4) return payload_bytes(dtype, n);
    uint64_t blocks = n / 32 + (n % 32 != 0), bytes = 0;
    if (__builtin_mul_overflow(blocks, (uint64_t)18, &bytes) || bytes > (uint64_t)SIZE_MAX)
        throw std::invalid_argument("apr_q4: byte size overflows");
    return (size_t)bytes;
}

void dequant_range(int dtype, const uint8_t* base, uint64_t start, size_t count, float* out, bool simd) {
    if (count == 0) return;
    if (dtype == kAprQ8) {
        float scale;
        std::memcpy(&scale, base, 4);
        const int8_t* q = reinterpret_cast<const int8_t*>(base + APR_Q8_HEADER_BYTES) + start;
        for (size_t i = 0; i < count; ++i) out[i] = (float)q[i] * scale;
        return;
    }
    const DTypeTraits& t = *find_dtype(dtype);
    const DequantKernel k = dequant_kernel(dtype);
    const DequantFn fn = (simd && k.simd) ? k.simd : k.ref;
    const uint64_t be = t.block_elems, bb = t.block_bytes;
    uint64_t blk = start / be;
    size_t head = (size_t)(start % be);
    if (head) {  // partial leading block through a stack buffer
        float tmp[256];
        fn(base + blk * bb, tmp, 1);
        size_t take = (size_t)be - head < count ? (size_t)be - head : count;
        std::memcpy(out, tmp + head, take * 4);
        out += take;
        count -= take;
        ++blk;
    }
    const size_t whole = count / be;
    if (whole) fn(base + blk * bb, out, whole);
    out += whole * be;
    count -= whole * be;
    blk += whole;
    if (count) {
        float tmp[256];
        fn(base + blk * bb, tmp, 1);
        std::memcpy(out, tmp, count * 4);
    }
}

}  // namespace aprqa
