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
#include "quant_k.h"

namespace aprqa {

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

// ---- tensor-level quantizers: the quantizer column of csrc/dtypes.h's rows ----------

// f32 copy, f16 / bf16 round-to-nearest-even: one-element "blocks" for by_blocks.
static void cast_f32(const float* x, uint8_t* out, size_t n) { std::memcpy(out, x, n * 4); }
static void cast_f16(const float* x, uint8_t* out, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
    }
}
static void cast_bf16(const float* x, uint8_t* out, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
    }
}

// A block kernel run over the n / block_elems whole blocks in parallel slices.
template <void (*fn)(const float*, uint8_t*, size_t)>
static void by_blocks(const DTypeTraits& t, const float* x, size_t n, uint8_t* out, int threads) {
    const size_t nb = n / t.block_elems;
    parallel_slices(nb, threads, [&](int, size_t lo, size_t hi) {
        fn(x + lo * t.block_elems, out + lo * t.block_bytes, hi - lo);
    });
}

// APR q4: ceil(n/32) blocks, the last one zero-padded.
static void quant_apr_q4_tensor(const DTypeTraits&, const float* x, size_t n, uint8_t* out, int threads) {
    const size_t nb = n / 32 + (n % 32 != 0);
    parallel_slices(nb, threads, [&](int, size_t lo, size_t hi) { quant_apr_q4(x, n, out, lo, hi); });
}

// APR q8: one tensor-wide scale amax/127 (1.0 if all zero) in an f32 header, then one int8 per element.
static void quant_apr_q8_tensor(const DTypeTraits&, const float* x, size_t n, uint8_t* out, int threads) {
    float amax = 0;
    for (size_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float scale = amax != 0.0f ? amax / 127.0f : 1.0f;
    std::memcpy(out, &scale, 4);
    int8_t* q = reinterpret_cast<int8_t*>(out + APR_Q8_HEADER_BYTES);
    parallel_slices(n, threads, [&](int, size_t lo, size_t hi) {
        for (size_t i = lo; i < hi; ++i) q[i] = (int8_t)clampi((int)std::round(x[i] / scale), -127, 127);
    });
}

static QuantFn quant_kernel(int dtype) {
    switch (dtype) {
#define APRQA_X(sym, id, name, block_elems, block_bytes, dequant_ref, dequant_simd, quant, ...) \
    case k##sym: return quant;
        APRQA_DTYPES(APRQA_X)
#undef APRQA_X
        default: return nullptr;
    }
}

bool quant_supported(int dtype) { return quant_kernel(dtype) != nullptr; }

void require_quant(int dtype) {
    const DTypeTraits& t = dtype_or_throw(dtype);
    if (!quant_supported(dtype))
        throw dtype_error(std::string("unsupported dtype ") + t.name + " for quantization");
}

void quantize(int dtype, const float* x, size_t n, uint8_t* out, int threads) {
    const QuantFn fn = quant_kernel(dtype);
    if (fn) fn(*find_dtype(dtype), x, n, out, threads);
}

}  // namespace aprqa
