// Reference quantizers (scalar; quantization is not on any hot path).
#include "quant.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "blocks.h"
#include "dequant.h"
#include "dtypes.h"
#include "half.h"
#include "parallel.h"

namespace aprqa {

static constexpr float GROUP_MAX_EPS = 1e-15f;

static inline int nearest_int(float v) { return (int)std::nearbyint(v); }  // ties to even, like ggml's
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// ---- legacy blocks (bit-exact with ggml / gguf-py) -------------------------

static void quant_q8_0(const float* x, uint8_t* out, size_t nb) {
    block_q8_0* y = reinterpret_cast<block_q8_0*>(out);
    for (size_t i = 0; i < nb; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        for (int j = 0; j < 32; ++j) y[i].qs[j] = (int8_t)std::round(x[j] * id);
    }
}
static inline void absmax_signed(const float* x, int n, float* amax, float* max) {
    *amax = 0.0f;
    *max = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float v = x[j];
        if (*amax < std::fabs(v)) {
            *amax = std::fabs(v);
            *max = v;
        }
    }
}
static void quant_q4_0(const float* x, uint8_t* out, size_t nb) {
    block_q4_0* y = reinterpret_cast<block_q4_0*>(out);
    for (size_t i = 0; i < nb; ++i, x += 32) {
        float amax, max;
        absmax_signed(x, 32, &amax, &max);
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        for (int j = 0; j < 16; ++j) {
            const int a = std::min(15, (int)(int8_t)(x[j] * id + 8.5f));
            const int b = std::min(15, (int)(int8_t)(x[j + 16] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}
static void quant_q5_0(const float* x, uint8_t* out, size_t nb) {
    block_q5_0* y = reinterpret_cast<block_q5_0*>(out);
    for (size_t i = 0; i < nb; ++i, x += 32) {
        float amax, max;
        absmax_signed(x, 32, &amax, &max);
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const int a = std::min(31, (int)(int8_t)(x[j] * id + 16.5f));
            const int b = std::min(31, (int)(int8_t)(x[j + 16] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((b & 0x10) >> 4) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}
static inline void minmax(const float* x, int n, float* mn, float* mx) {
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < n; ++j) {
        if (x[j] < *mn) *mn = x[j];
        if (x[j] > *mx) *mx = x[j];
    }
}
static void quant_q4_1(const float* x, uint8_t* out, size_t nb) {
    block_q4_1* y = reinterpret_cast<block_q4_1*>(out);
    for (size_t i = 0; i < nb; ++i, x += 32) {
        float mn, mx;
        minmax(x, 32, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(mn);
        for (int j = 0; j < 16; ++j) {
            const int a = std::min(15, (int)(int8_t)((x[j] - mn) * id + 0.5f));
            const int b = std::min(15, (int)(int8_t)((x[j + 16] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}
static void quant_q5_1(const float* x, uint8_t* out, size_t nb) {
    block_q5_1* y = reinterpret_cast<block_q5_1*>(out);
    for (size_t i = 0; i < nb; ++i, x += 32) {
        float mn, mx;
        minmax(x, 32, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const int a = std::min(31, (int)(uint8_t)((x[j] - mn) * id + 0.5f));
            const int b = std::min(31, (int)(uint8_t)((x[j + 16] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((b & 0x10) >> 4) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

// ---- K-quants: ggml's reference search, re-derived -------------------------

// Weighted least-squares fit of x ~ scale*L + min (min <= 0) over a small grid
// of inverse scales; returns scale, writes -min to *the_min.
static float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                              uint8_t* Laux, float rmin, float rdelta, int nstep) {
    float mn = x[0], mx = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        std::memset(L, 0, n);
        *the_min = -mn;
        return 0.0f;
    }
    float iscale = nmax / (mx - mn);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
        const float diff = scale * L[i] + mn - x[i];
        best += w[i] * diff * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * diff * diff;
            }
            if (err < best) {
                std::memcpy(L, Laux, n);
                best = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *the_min = -mn;
    return scale;
}

static void pack_scale_min_k4(int j, int ls, int lm, uint8_t* s) {
    if (j < 4) {
        s[j] = (uint8_t)ls;
        s[j + 4] = (uint8_t)lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
    }
}
static void unpack_scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fills d, dmin, scales[12], L[256].
static void quant_k_scales(const float* x, int nmax, float rmin, int nstep, uint16_t* d16, uint16_t* dmin16,
                           uint8_t* scales, uint8_t* L) {
    float mins[8], sc[8], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        sc[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(scales, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; ++j) {
        const int ls = std::min(63, nearest_int(inv_scale * sc[j]));
        const int lm = std::min(63, nearest_int(inv_min * mins[j]));
        pack_scale_min_k4(j, ls, lm, scales);
    }
    *d16 = f32_to_f16(max_scale / 63.f);
    *dmin16 = f32_to_f16(max_min / 63.f);
    const float d = f16_to_f32(*d16), dmin = f16_to_f32(*dmin16);
    for (int j = 0; j < 8; ++j) {
        int s, m;
        unpack_scale_min_k4(j, scales, &s, &m);
        const float dl = d * s;
        if (dl == 0.0f) continue;
        const float dm = dmin * m;
        for (int ii = 0; ii < 32; ++ii) L[32 * j + ii] = (uint8_t)clampi(nearest_int((x[32 * j + ii] + dm) / dl), 0, nmax);
    }
}

static void quant_q4_K(const float* x, uint8_t* out, size_t nb) {
    block_q4_K* y = reinterpret_cast<block_q4_K*>(out);
    for (size_t i = 0; i < nb; ++i, x += QK_K) {
        uint8_t L[QK_K] = {0};
        quant_k_scales(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t* q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}
static void quant_q5_K(const float* x, uint8_t* out, size_t nb) {
    block_q5_K* y = reinterpret_cast<block_q5_K*>(out);
    for (size_t i = 0; i < nb; ++i, x += QK_K) {
        uint8_t L[QK_K] = {0};
        quant_k_scales(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        std::memset(y[i].qh, 0, sizeof y[i].qh);
        uint8_t* ql = y[i].qs;
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) { l1 -= 16; y[i].qh[j] |= m1; }
                if (l2 > 15) { l2 -= 16; y[i].qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
        }
    }
}

// Signed symmetric fit x ~ scale*(L - nmax), weights x^2, search 18 nearby scales.
static float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        std::memset(L, 0, n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quant_q6_K(const float* x, uint8_t* out, size_t nb) {
    block_q6_K* y = reinterpret_cast<block_q6_K*>(out);
    for (size_t i = 0; i < nb; ++i, x += QK_K) {
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            const float a = std::fabs(scales[ib]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[ib]; }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            std::memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ++ib) y[i].scales[ib] = (int8_t)std::min(127, nearest_int(iscale * scales[ib]));
        const float d16 = f16_to_f32(y[i].d);
        for (int j = 0; j < 16; ++j) {
            const float dl = d16 * y[i].scales[j];
            if (dl == 0.0f) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / dl), -32, 31) + 32);
        }
        uint8_t* ql = y[i].ql;
        uint8_t* qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

// ---- APR ------------------------------------------------------------------

// Per 32 values: scale = absmax/7 (1.0 if all zero), stored as f16; nibble =
// clamp(round_half_away(x/scale) + 8, 0, 15) with the f32 scale; pairs packed
// low nibble = even element. The tail block is zero-padded.
static void quant_apr_q4(const float* x, size_t n, uint8_t* out, size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
        float v[32] = {0};
        const size_t s = b * 32, e = std::min(n, s + 32);
        for (size_t i = s; i < e; ++i) v[i - s] = x[i];
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(v[j]));
        const float scale = amax != 0.0f ? amax / 7.0f : 1.0f;
        block_apr_q4* y = reinterpret_cast<block_apr_q4*>(out) + b;
        y->d = f32_to_f16(scale);
        for (int j = 0; j < 16; ++j) {
            const int a = clampi((int)std::round(v[2 * j] / scale) + 8, 0, 15);
            const int c = clampi((int)std::round(v[2 * j + 1] / scale) + 8, 0, 15);
            y->qs[j] = (uint8_t)(a | (c << 4));
        }
    }
}

bool quant_supported(int dtype) {
    switch (dtype) {
        case 0: case 1: case 30:  // float casts, round-to-nearest-even
        case 2: case 3: case 6: case 7: case 8: case 12: case 13: case 14: case kAprQ4: case kAprQ8: return true;
        default: return false;
    }
}

void require_quant(int dtype) {
    const DTypeTraits& t = dtype_or_throw(dtype);
    if (!quant_supported(dtype))
        throw dtype_error(std::string("unsupported dtype ") + t.name + " for quantization");
}

void quantize(int dtype, const float* x, size_t n, uint8_t* out, int threads) {
    if (dtype == 0 || dtype == 1 || dtype == 30) {  // f32 copy, f16 / bf16 round-to-nearest-even
        parallel_slices(n, threads, [&](int, size_t lo, size_t hi) {
            for (size_t i = lo; i < hi; ++i) {
                if (dtype == 0) {
                    std::memcpy(out + 4 * i, &x[i], 4);
                } else {
                    const uint16_t h = dtype == 1 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
                    std::memcpy(out + 2 * i, &h, 2);
                }
            }
        });
        return;
    }
    if (dtype == kAprQ8) {
        float amax = 0;
        for (size_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
        const float scale = amax != 0.0f ? amax / 127.0f : 1.0f;
        std::memcpy(out, &scale, 4);
        int8_t* q = reinterpret_cast<int8_t*>(out + APR_Q8_HEADER_BYTES);
        parallel_slices(n, threads, [&](int, size_t lo, size_t hi) {
            for (size_t i = lo; i < hi; ++i) q[i] = (int8_t)clampi((int)std::round(x[i] / scale), -127, 127);
        });
        return;
    }
    if (dtype == kAprQ4) {
        const size_t nb = n / 32 + (n % 32 != 0);
        parallel_slices(nb, threads, [&](int, size_t lo, size_t hi) { quant_apr_q4(x, n, out, lo, hi); });
        return;
    }
    void (*fn)(const float*, uint8_t*, size_t) = nullptr;
    switch (dtype) {
        case 2: fn = quant_q4_0; break;
        case 3: fn = quant_q4_1; break;
        case 6: fn = quant_q5_0; break;
        case 7: fn = quant_q5_1; break;
        case 8: fn = quant_q8_0; break;
        case 12: fn = quant_q4_K; break;
        case 13: fn = quant_q5_K; break;
        case 14: fn = quant_q6_K; break;
        default: return;
    }
    const DTypeTraits& t = *find_dtype(dtype);
    const size_t nb = n / t.block_elems;
    parallel_slices(nb, threads, [&](int, size_t lo, size_t hi) {
        fn(x + lo * t.block_elems, out + lo * t.block_bytes, hi - lo);
    });
}

}  // namespace aprqa
