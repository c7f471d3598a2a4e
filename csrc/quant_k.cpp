// K-quant reference quantizers. The searches follow ggml's reference (facts from
// ggml-quants.c: make_qkx2_quants, make_q3_quants, make_qx_quants and the
// per-type packing); every float expression keeps ggml's evaluation order, and
// the build disables FMA contraction, so the bytes match llama_model_quantize.
#include "quant_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "blocks.h"
#include "half.h"

namespace aprqa {

static constexpr float GROUP_MAX_EPS = 1e-15f;

// Round to nearest, ties to even, by adding 1.5*2^23 and reading the mantissa -
// ggml's own rounding. Defined for every input (no float->int conversion), exact
// for |v| <= 2^22; larger or non-finite inputs give a value the callers clamp.
static inline int nearest_int(float v) {
    const float t = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Weighted fit x ~ scale*L + min (min <= 0, L in [0, nmax]) over nstep+1 trial
// inverse scales; error is w*d^2, or w*|d| with use_mad. Returns scale; -min in *the_min.
static float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                              uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
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
    auto err_of = [use_mad](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
    float iscale = nmax / (mx - mn);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
        best += w[i] * err_of(scale * L[i] + mn - x[i]);
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
            for (int i = 0; i < n; ++i) err += w[i] * err_of(this_scale * Laux[i] + this_min - x[i]);
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

// Shared start of the signed fits: the value of largest magnitude (sign kept) sets
// iscale = -nmax/max; L[i] = clamp(round(iscale*x), -nmax, nmax-1) (+ offset) with the x^2-weighted
// sums sumlx, suml2. Returns false (L zeroed) for an all-(near-)zero group.
static bool signed_first_fit(int n, int nmax, const float* x, int8_t* L, int offset, float* max_out,
                             float* sumlx, float* suml2) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        std::memset(L, 0, n);
        return false;
    }
    *max_out = max;
    const float iscale = -nmax / max;
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + offset);
        const float w = x[i] * x[i];
        slx += w * x[i] * l;
        sl2 += w * l * l;
    }
    *sumlx = slx;
    *suml2 = sl2;
    return true;
}

// Signed symmetric fit x ~ scale*(L - nmax), weights x^2, 18 nearby trial scales (Q6_K).
static float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float max, sumlx, suml2;
    if (!signed_first_fit(n, nmax, x, L, nmax, &max, &sumlx, &suml2)) return 0.f;
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max;
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

// Signed fit x ~ scale*(L - nmax), L - nmax in [-nmax, nmax-1], then up to five
// coordinate-descent passes that move one value when it improves sumlx^2/suml2 (Q3_K).
static float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
    float max, sumlx, suml2;
    if (!signed_first_fit(n, nmax, x, L, 0, &max, &sumlx, &suml2)) return 0.f;
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                ++changed;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Four 2-bit values per byte: byte l of each 32-byte group holds elements l, l+32, l+64, l+96.
static void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] =
                (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void quant_q2_K(const float* x, uint8_t* out, size_t nb) {
    block_q2_K* y = reinterpret_cast<block_q2_K*>(out);
    for (size_t i = 0; i < nb; ++i, x += QK_K) {
        uint8_t L[QK_K], Laux[16];
        float weights[16], mins[16], scales[16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        // 4-bit scale (low nibble) and 4-bit min (high nibble) per group of 16
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; ++j) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = f32_to_f16(max_scale / 15.f);
        } else {
            std::memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < 16; ++j) y[i].scales[j] |= (uint8_t)((unsigned)nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = f32_to_f16(max_min / 15.f);
        } else {
            y[i].dmin = f32_to_f16(0.f);
        }
        const float d16 = f16_to_f32(y[i].d), dmin16 = f16_to_f32(y[i].dmin);
        for (int j = 0; j < 16; ++j) {
            const float dl = d16 * (y[i].scales[j] & 0xF);
            if (dl == 0.0f) continue;
            const float ml = dmin16 * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (uint8_t)clampi(nearest_int((x[16 * j + ii] + ml) / dl), 0, 3);
        }
        pack_2bit(L, y[i].qs);
    }
}

// Q3_K's 16 six-bit scales: low nibbles in bytes 0-7 (two per byte), high 2-bit pairs in bytes 8-11.
static int q3_scale_at(const uint8_t* s, int j) {
    const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    return (low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

void quant_q3_K(const float* x, uint8_t* out, size_t nb) {
    block_q3_K* y = reinterpret_cast<block_q3_K*>(out);
    for (size_t i = 0; i < nb; ++i, x += QK_K) {
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float a = std::fabs(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        std::memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) {
                // ggml narrows to int8 before clamping; |iscale*scale| <= 32 here, so no wrap
                const int l = clampi((int8_t)nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = f32_to_f16(1 / iscale);
        } else {
            y[i].d = f32_to_f16(0.f);
        }
        const float d16 = f16_to_f32(y[i].d);
        for (int j = 0; j < 16; ++j) {
            const float dl = d16 * q3_scale_at(y[i].scales, j);
            if (dl == 0.0f) continue;
            for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / dl), -4, 3) + 4);
        }
        // high bit of element j goes to hmask[j % 32], bit j / 32
        std::memset(y[i].hmask, 0, sizeof y[i].hmask);
        uint8_t L2[QK_K];
        for (int j = 0; j < QK_K; ++j) {
            int l = L[j];
            if (l > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                l -= 4;
            }
            L2[j] = (uint8_t)l;
        }
        pack_2bit(L2, y[i].qs);
    }
}

static void pack_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* s) {
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
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
        sc[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(scales, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; ++j) {
        // ggml stores the rounded value in a uint8_t before the min(63): a negative one wraps to 63
        uint8_t ls = (uint8_t)nearest_int(inv_scale * sc[j]), lm = (uint8_t)nearest_int(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
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

void quant_q4_K(const float* x, uint8_t* out, size_t nb) {
    block_q4_K* y = reinterpret_cast<block_q4_K*>(out);
    for (size_t i = 0; i < nb; ++i, x += QK_K) {
        uint8_t L[QK_K] = {0};
        quant_k_scales(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t* q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void quant_q5_K(const float* x, uint8_t* out, size_t nb) {
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

void quant_q6_K(const float* x, uint8_t* out, size_t nb) {
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

}  // namespace aprqa
