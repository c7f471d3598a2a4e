// Scalar reference of the vec_dot kernels (see vecdot.h for the defined arithmetic),
// the row unpackers, the activation quantizer, and the threaded matmul driver.
#include "vecdot.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "blocks.h"
#include "dequant.h"
#include "dtypes.h"
#include "half.h"
#include "iq4nl.h"
#include "vecdot_pool.h"

namespace aprqa {

bool vecdot_int_supported(int dtype) {
    switch (dtype) {
        case kQ8_0: case kQ4_0: case kQ4_1: case kQ5_0: case kQ5_1: case kIQ4_NL:
        case kQ2_K: case kQ3_K: case kQ4_K: case kQ5_K: case kQ6_K: case kIQ4_XS:
            return true;
        default:
            return false;
    }
}
bool vecdot_float_supported(int dtype) { return dtype == kF32 || dtype == kF16 || dtype == kBF16; }
bool vecdot_supported(int dtype) { return vecdot_int_supported(dtype) || vecdot_float_supported(dtype); }
bool dtype_has_min(int dtype) {
    return dtype == kQ4_1 || dtype == kQ5_1 || dtype == kQ2_K || dtype == kQ4_K || dtype == kQ5_K;
}
int64_t vecdot_row_multiple(int dtype) {
    if (vecdot_float_supported(dtype)) return 1;
    const int64_t be = dtype_or_throw(dtype).block_elems;
    return be < VD_CHUNK ? VD_CHUNK : be;
}

// ---- levels --------------------------------------------------------------------------

static int detect_level() {
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !__builtin_cpu_supports("f16c"))
        return kVdScalar;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
        return kVdAvx512;
    return kVdAvx2;
#else
    return kVdScalar;
#endif
}
static const int g_level = detect_level();

int vecdot_best_level() { return simd_enabled() ? g_level : kVdScalar; }
std::string vecdot_level_name(int level) {
    return level == kVdAvx512 ? "avx512" : level == kVdAvx2 ? "avx2" : "scalar";
}

// ---- activations ---------------------------------------------------------------------

void quantize_act(const float* x, int64_t tokens, int64_t n, ActQ8& a) {
    a.tokens = tokens;
    a.n = n;
    a.q.resize((size_t)(tokens * n));
    a.d.resize((size_t)(tokens * (n / VD_CHUNK)));
    a.xs.resize((size_t)(tokens * (n / VD_GROUP)));
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t c = 0; c < n / VD_CHUNK; ++c) {
            const float* v = x + t * n + c * VD_CHUNK;
            int8_t* q = a.q.data() + t * n + c * VD_CHUNK;
            float amax = 0.0f;
            for (int i = 0; i < VD_CHUNK; ++i) amax = std::fmax(amax, std::fabs(v[i]));
            bool finite = std::isfinite(amax);
            for (int i = 0; i < VD_CHUNK; ++i) finite = finite && !std::isnan(v[i]);
            // A NaN/Inf activation makes the block's scale NaN: the products become NaN, as in f32.
            const float d = finite ? amax / 127.0f : NAN;
            const float id = (finite && amax > 0.0f) ? 127.0f / amax : 0.0f;
            for (int i = 0; i < VD_CHUNK; ++i) {
                float r = std::nearbyint(v[i] * id);
                r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
                q[i] = finite ? (int8_t)r : 0;
            }
            a.d[(size_t)(t * (n / VD_CHUNK) + c)] = d;
            for (int g = 0; g < 2; ++g) {
                int s = 0;
                for (int i = 0; i < VD_GROUP; ++i) s += q[g * VD_GROUP + i];
                a.xs[(size_t)(t * (n / VD_GROUP) + 2 * c + g)] = d * (float)s;
            }
        }
    }
}

// ---- scalar unpackers: q (int8), s16 and m16 (per 16) for one row ---------------------------

// Writes nb blocks of `dtype` starting at src: q[nb*be], s[nb*be/16], m[nb*be/16] (m untouched
// for types without mins).
static void unpack_scalar(int dtype, const uint8_t* src, int64_t nb, int8_t* q, float* s, float* m) {
    for (int64_t i = 0; i < nb; ++i) {
        switch (dtype) {
            case kQ8_0: {
                const block_q8_0& b = reinterpret_cast<const block_q8_0*>(src)[i];
                std::memcpy(q, b.qs, 32);
                s[0] = s[1] = f16_to_f32(b.d);
                q += 32; s += 2;
                break;
            }
            case kQ4_0: case kQ4_1: case kIQ4_NL: {
                const uint8_t* qs; float d, mn = 0.0f;
                if (dtype == kQ4_1) {
                    const block_q4_1& b = reinterpret_cast<const block_q4_1*>(src)[i];
                    qs = b.qs; d = f16_to_f32(b.d); mn = -f16_to_f32(b.m);
                } else {
                    const block_q4_0& b = reinterpret_cast<const block_q4_0*>(src)[i];  // iq4_nl: same layout
                    qs = b.qs; d = f16_to_f32(b.d);
                }
                for (int j = 0; j < 16; ++j) {
                    const int lo = qs[j] & 0xF, hi = qs[j] >> 4;
                    q[j] = (int8_t)(dtype == kIQ4_NL ? kIQ4NL[lo] : dtype == kQ4_0 ? lo - 8 : lo);
                    q[j + 16] = (int8_t)(dtype == kIQ4_NL ? kIQ4NL[hi] : dtype == kQ4_0 ? hi - 8 : hi);
                }
                s[0] = s[1] = d;
                if (dtype == kQ4_1) { m[0] = m[1] = mn; m += 2; }
                q += 32; s += 2;
                break;
            }
            case kQ5_0: case kQ5_1: {
                const uint8_t *qs, *qhp; float d, mn = 0.0f;
                if (dtype == kQ5_1) {
                    const block_q5_1& b = reinterpret_cast<const block_q5_1*>(src)[i];
                    qs = b.qs; qhp = b.qh; d = f16_to_f32(b.d); mn = -f16_to_f32(b.m);
                } else {
                    const block_q5_0& b = reinterpret_cast<const block_q5_0*>(src)[i];
                    qs = b.qs; qhp = b.qh; d = f16_to_f32(b.d);
                }
                const uint32_t qh = load_u32(qhp);
                const int off = dtype == kQ5_0 ? 16 : 0;
                for (int j = 0; j < 16; ++j) {
                    q[j] = (int8_t)((int)((qs[j] & 0xF) | (((qh >> j) & 1u) << 4)) - off);
                    q[j + 16] = (int8_t)((int)((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - off);
                }
                s[0] = s[1] = d;
                if (dtype == kQ5_1) { m[0] = m[1] = mn; m += 2; }
                q += 32; s += 2;
                break;
            }
            case kQ2_K: {
                const block_q2_K& b = reinterpret_cast<const block_q2_K*>(src)[i];
                const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
                int is = 0;
                for (int n = 0; n < 2; ++n)
                    for (int j = 0; j < 4; ++j)
                        for (int g = 0; g < 2; ++g, ++is) {
                            const uint8_t sc = b.scales[is];
                            s[is] = d * (float)(sc & 0xF);
                            m[is] = dmin * (float)(sc >> 4);
                            for (int l = 0; l < 16; ++l) q[16 * is + l] = (int8_t)((b.qs[32 * n + l + 16 * g] >> (2 * j)) & 3);
                        }
                q += 256; s += 16; m += 16;
                break;
            }
            case kQ3_K: {
                const block_q3_K& b = reinterpret_cast<const block_q3_K*>(src)[i];
                const float d = f16_to_f32(b.d);
                int is = 0;
                for (int n = 0; n < 2; ++n)
                    for (int j = 0; j < 4; ++j) {
                        const uint8_t hm = (uint8_t)(1u << (4 * n + j));
                        for (int g = 0; g < 2; ++g, ++is) {
                            s[is] = d * (float)q3k_scale(b.scales, is);
                            for (int l = 0; l < 16; ++l) {
                                const int li = l + 16 * g;
                                q[16 * is + l] = (int8_t)(((b.qs[32 * n + li] >> (2 * j)) & 3) - ((b.hmask[li] & hm) ? 0 : 4));
                            }
                        }
                    }
                q += 256; s += 16;
                break;
            }
            case kQ4_K: case kQ5_K: {
                const bool five = dtype == kQ5_K;
                const uint8_t *scales, *qs, *qh = nullptr; uint16_t dh, mh;
                if (five) {
                    const block_q5_K& b = reinterpret_cast<const block_q5_K*>(src)[i];
                    scales = b.scales; qs = b.qs; qh = b.qh; dh = b.d; mh = b.dmin;
                } else {
                    const block_q4_K& b = reinterpret_cast<const block_q4_K*>(src)[i];
                    scales = b.scales; qs = b.qs; dh = b.d; mh = b.dmin;
                }
                const float d = f16_to_f32(dh), dmin = f16_to_f32(mh);
                for (int sb = 0; sb < 8; ++sb) {
                    int sc, mm;
                    k4_scale_min(sb, scales, sc, mm);
                    s[2 * sb] = s[2 * sb + 1] = d * (float)sc;
                    m[2 * sb] = m[2 * sb + 1] = dmin * (float)mm;
                    const uint8_t* src32 = qs + 32 * (sb / 2);
                    for (int l = 0; l < 32; ++l) {
                        int v = (sb & 1) ? (src32[l] >> 4) : (src32[l] & 0xF);
                        if (five) v += ((qh[l] >> sb) & 1) << 4;
                        q[32 * sb + l] = (int8_t)v;
                    }
                }
                q += 256; s += 16; m += 16;
                break;
            }
            case kQ6_K: {
                const block_q6_K& b = reinterpret_cast<const block_q6_K*>(src)[i];
                const float d = f16_to_f32(b.d);
                for (int g = 0; g < 16; ++g) s[g] = d * (float)b.scales[g];
                for (int n = 0; n < 2; ++n) {
                    const uint8_t* ql = b.ql + 64 * n;
                    const uint8_t* qh = b.qh + 32 * n;
                    int8_t* y = q + 128 * n;
                    for (int l = 0; l < 32; ++l) {
                        y[l] = (int8_t)((int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                        y[l + 32] = (int8_t)((int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                        y[l + 64] = (int8_t)((int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                        y[l + 96] = (int8_t)((int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                    }
                }
                q += 256; s += 16;
                break;
            }
            case kIQ4_XS: {
                const block_iq4_xs& b = reinterpret_cast<const block_iq4_xs*>(src)[i];
                const float d = f16_to_f32(b.d);
                for (int ib = 0; ib < 8; ++ib) {
                    const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scales_h >> (2 * ib)) & 3) << 4);
                    s[2 * ib] = s[2 * ib + 1] = d * (float)(ls - 32);
                    const uint8_t* qs = b.qs + 16 * ib;
                    for (int j = 0; j < 16; ++j) {
                        q[32 * ib + j] = kIQ4NL[qs[j] & 0xF];
                        q[32 * ib + j + 16] = kIQ4NL[qs[j] >> 4];
                    }
                }
                q += 256; s += 16;
                break;
            }
            default:
                throw dtype_error(std::string("vec_dot: unsupported dtype ") + dtype_or_throw(dtype).name);
        }
    }
}

#if defined(__x86_64__) || defined(_M_X64)
bool unpack_row_simd(int dtype, const uint8_t* row, int64_t n, int8_t* q, uint8_t* aq, float* s8, float* m);
#endif

void unpack_row(int dtype, const uint8_t* row, int64_t n, int8_t* q, uint8_t* aq, float* s8, float* m, int level) {
#if defined(__x86_64__) || defined(_M_X64)
    if (level > kVdScalar && unpack_row_simd(dtype, row, n, q, aq, s8, m)) return;
#endif
    const int64_t be = dtype_or_throw(dtype).block_elems;
    const uint32_t bb = dtype_or_throw(dtype).block_bytes;
    float s16[4096 / VD_GROUP];
    // rows wider than 4096 go in pieces of whole blocks (be divides 4096)
    for (int64_t off = 0; off < n; off += 4096) {
        const int64_t len = n - off < 4096 ? n - off : 4096;
        unpack_scalar(dtype, row + (off / be) * bb, len / be, q + off, s16, m ? m + off / VD_GROUP : nullptr);
        for (int64_t i = 0; i < len; ++i) aq[off + i] = (uint8_t)std::abs((int)q[off + i]);
        float* s = s8 + off / 4;
        for (int64_t c = 0; c < len / VD_CHUNK; ++c)
            for (int l = 0; l < 8; ++l) s[8 * c + l] = s16[2 * c + l / 4];
    }
}

// ---- scalar reference tiles --------------------------------------------------------------

static inline float fold8(const float* a) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

static void tile_scalar(int rows, const int8_t* q, const uint8_t*, const float* s8, int64_t n, const ActQ8& a,
                        float* out, int64_t ldo) {
    const int64_t nc = n / VD_CHUNK;
    for (int r = 0; r < rows; ++r) {
        const int8_t* qr = q + r * n;
        const float* sr = s8 + r * (n / 4);
        for (int64_t t = 0; t < a.tokens; ++t) {
            const int8_t* x = a.q.data() + t * n;
            const float* dx = a.d.data() + t * nc;
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t c = 0; c < nc; ++c)
                for (int l = 0; l < 8; ++l) {
                    int p = 0;
                    for (int k = 0; k < 4; ++k) p += (int)qr[32 * c + 4 * l + k] * (int)x[32 * c + 4 * l + k];
                    acc[l] = std::fma((float)p, sr[8 * c + l] * dx[c], acc[l]);
                }
            out[t * ldo + r] = fold8(acc);
        }
    }
}

static inline float load_float(int dtype, const uint8_t* w, int64_t i) {
    if (dtype == kF16) return f16_to_f32(load_u16(w + 2 * i));
    if (dtype == kBF16) return bf16_to_f32(load_u16(w + 2 * i));
    float f;
    std::memcpy(&f, w + 4 * i, 4);
    return f;
}

static void float_rows_scalar(int dtype, const uint8_t* w, int rows, int64_t n, float* dst) {
    for (int64_t i = 0; i < rows * n; ++i) dst[i] = load_float(dtype, w, i);
}

static void dequant_canon_scalar(const int8_t* q, const float* s8, const float* m16, int64_t n, float* dst) {
    for (int64_t i = 0; i < n; ++i) {
        const float v = s8[(i / 32) * 8 + ((i % 32) / 16) * 4] * (float)q[i];
        dst[i] = m16 ? v - m16[i / 16] : v;
    }
}

static void f32_tile_scalar(int rows, const float* w, int64_t n, const float* x, int64_t tokens, float* out,
                            int64_t ldo) {
    for (int r = 0; r < rows; ++r)
        for (int64_t t = 0; t < tokens; ++t) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t i = 0; i < n; ++i) acc[i % 8] = std::fma(w[r * n + i], x[t * n + i], acc[i % 8]);
            out[t * ldo + r] = fold8(acc);
        }
}

#if defined(__x86_64__) || defined(_M_X64)
TileFn tile_avx2();
TileFn tile_avx512();
F32TileFn f32_tile_avx2();
F32TileFn f32_tile_avx512();
FloatRowsFn float_rows_avx2();
DequantCanonFn dequant_canon_avx2();
CanonTileFn canon_tile_avx2();
CanonTileFn canon_tile_avx512();
DirectTileFn direct_tile_avx2(int dtype);
#define VD_PICK(level, avx512, avx2, scalar) \
    ((level) == kVdAvx512 ? (avx512) : (level) == kVdAvx2 ? (avx2) : (scalar))
#else
#define VD_PICK(level, avx512, avx2, scalar) (scalar)
#endif

TileFn tile_kernel(int level) { return VD_PICK(level, tile_avx512(), tile_avx2(), tile_scalar); }
F32TileFn f32_tile_kernel(int level) { return VD_PICK(level, f32_tile_avx512(), f32_tile_avx2(), f32_tile_scalar); }
CanonTileFn canon_tile_kernel(int level) {
    return VD_PICK(level, canon_tile_avx512(), canon_tile_avx2(), (CanonTileFn) nullptr);
}
DirectTileFn direct_tile_kernel(int level, int dtype) {
    return VD_PICK(level, direct_tile_avx2(dtype), direct_tile_avx2(dtype), (DirectTileFn) nullptr);
}
FloatRowsFn float_rows_kernel(int level) {
    return VD_PICK(level, float_rows_avx2(), float_rows_avx2(), float_rows_scalar);
}
DequantCanonFn dequant_canon_kernel(int level) {
    return VD_PICK(level, dequant_canon_avx2(), dequant_canon_avx2(), dequant_canon_scalar);
}

// ---- driver ------------------------------------------------------------------------------

constexpr int kTileRows = 4;    // rows unpacked together (shared activation loads)
constexpr int kTaskRows = 16;   // fewest rows per work item handed to a thread
constexpr int kItemsPerThread = 16;  // items per thread: the last one bounds the idle tail
constexpr int kFusedTokens = 2;  // f32 activations: at most this many tokens dequantize in registers

// Rows per work item: about kItemsPerThread items per thread (fewer claims on the shared
// counter than one per kTaskRows rows on tall matrices such as the LM head), a multiple of
// kTileRows so that every row falls in the same tile whatever the thread count.
static int64_t task_rows(int64_t n_out, int threads) {
    const int64_t t = resolve_threads(threads);
    int64_t r = n_out / (t * kItemsPerThread);
    r = (r + kTileRows - 1) / kTileRows * kTileRows;
    return r < kTaskRows ? kTaskRows : r;
}

// A thread's scratch, kept between calls (pool workers and callers are long-lived): no
// allocation or zero-fill per matmul. Every element is written before it is read.
template <typename T>
static T* scratch(std::unique_ptr<T[]>& buf, size_t& cap, size_t n) {
    if (n > cap) {
        buf.reset(new T[n]);
        cap = n;
    }
    return buf.get();
}
struct Scratch {
    std::unique_ptr<float[]> wf, s8, m;
    std::unique_ptr<int8_t[]> q;
    std::unique_ptr<uint8_t[]> aq;
    size_t wf_n = 0, s8_n = 0, m_n = 0, q_n = 0, aq_n = 0;
};
static thread_local Scratch tl_scratch;

void vecdot_matmul(int dtype, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x, int64_t tokens,
                   float* out, int64_t ldo, int threads, int level, bool int8_act) {
    if (level > g_level) level = g_level;
    if (n_out <= 0 || tokens <= 0) return;
    if (!vecdot_supported(dtype))
        throw dtype_error(std::string("vec_dot: unsupported dtype ") + dtype_or_throw(dtype).name);
    const int64_t mult = vecdot_row_multiple(dtype);
    if (n_in <= 0 || n_in % mult) throw std::invalid_argument("vec_dot: row length not a multiple of " + std::to_string(mult));
    const size_t row_bytes = payload_bytes(dtype, (uint64_t)n_in);
    const int64_t item_rows = task_rows(n_out, threads);
    const int64_t tasks = (n_out + item_rows - 1) / item_rows;
    const bool has_min = dtype_has_min(dtype);
    const int64_t ng = n_in / VD_GROUP;
    std::atomic<int64_t> next{0};
    if (!int8_act || vecdot_float_supported(dtype)) {
        // f32 activations: rows made f32 in cache (F32 rows are read in place), then f32 tiles
        const F32TileFn tile = f32_tile_kernel(level);
        const FloatRowsFn rows_f32 = float_rows_kernel(level);
        const DequantCanonFn canon = dequant_canon_kernel(level);
        const bool is_int = vecdot_int_supported(dtype);
        // few tokens: dequantize in registers (no f32 row buffer); more: once per row, reused
        const CanonTileFn fused = tokens <= kFusedTokens ? canon_tile_kernel(level) : nullptr;
        const DirectTileFn direct = fused ? direct_tile_kernel(level, dtype) : nullptr;
        run_parallel(threads, tasks, [&](int) {
            Scratch& sc = tl_scratch;
            // the direct kernels read the stored rows and need no scratch
            const bool unpacks = is_int && !direct;
            float* wf = dtype == kF32 || direct ? nullptr : scratch(sc.wf, sc.wf_n, (size_t)(kTileRows * n_in));
            int8_t* q = unpacks ? scratch(sc.q, sc.q_n, (size_t)(kTileRows * n_in)) : nullptr;
            uint8_t* aq = unpacks ? scratch(sc.aq, sc.aq_n, (size_t)n_in) : nullptr;
            float* s8 = unpacks ? scratch(sc.s8, sc.s8_n, (size_t)(kTileRows * n_in / 4)) : nullptr;
            float* m = unpacks && has_min ? scratch(sc.m, sc.m_n, (size_t)(kTileRows * ng)) : nullptr;
            for (int64_t task; (task = next.fetch_add(1)) < tasks;) {
                const int64_t r1 = std::min(n_out, (task + 1) * item_rows);
                for (int64_t r = task * item_rows; r < r1; r += kTileRows) {
                    const int rows = (int)std::min<int64_t>(kTileRows, r1 - r);
                    const float* rowsp;
                    if (dtype == kF32) {
                        rowsp = reinterpret_cast<const float*>(w + r * row_bytes);
                    } else if (!is_int) {
                        rows_f32(dtype, w + r * row_bytes, rows, n_in, wf);
                        rowsp = wf;
                    } else if (direct) {
                        direct(rows, w + r * row_bytes, row_bytes, n_in, x, tokens, out + r, ldo);
                        continue;
                    } else if (fused) {
                        for (int j = 0; j < rows; ++j)
                            unpack_row(dtype, w + (r + j) * row_bytes, n_in, q + j * n_in, aq, s8 + j * (n_in / 4),
                                       has_min ? m + j * ng : nullptr, level);
                        fused(rows, q, s8, has_min ? m : nullptr, n_in, x, tokens, out + r, ldo);
                        continue;
                    } else {
                        for (int j = 0; j < rows; ++j) {
                            unpack_row(dtype, w + (r + j) * row_bytes, n_in, q, aq, s8, has_min ? m : nullptr, level);
                            canon(q, s8, has_min ? m : nullptr, n_in, wf + j * n_in);
                        }
                        rowsp = wf;
                    }
                    tile(rows, rowsp, n_in, x, tokens, out + r, ldo);
                }
            }
        });
        return;
    }
    ActQ8 a;
    quantize_act(x, tokens, n_in, a);
    const TileFn fn = tile_kernel(level);
    run_parallel(threads, tasks, [&](int) {
        Scratch& sc = tl_scratch;
        int8_t* q = scratch(sc.q, sc.q_n, (size_t)(kTileRows * n_in));
        uint8_t* aq = scratch(sc.aq, sc.aq_n, (size_t)(kTileRows * n_in));
        float* s8 = scratch(sc.s8, sc.s8_n, (size_t)(kTileRows * n_in / 4));
        float* m = has_min ? scratch(sc.m, sc.m_n, (size_t)(kTileRows * ng)) : nullptr;
        for (int64_t task; (task = next.fetch_add(1)) < tasks;) {
            const int64_t r1 = std::min(n_out, (task + 1) * item_rows);
            for (int64_t r = task * item_rows; r < r1; r += kTileRows) {
                const int rows = (int)std::min<int64_t>(kTileRows, r1 - r);
                for (int j = 0; j < rows; ++j)
                    unpack_row(dtype, w + (r + j) * row_bytes, n_in, q + j * n_in, aq + j * n_in, s8 + j * (n_in / 4),
                               has_min ? m + j * ng : nullptr, level);
                fn(rows, q, aq, s8, n_in, a, out + r, ldo);
                if (has_min)
                    for (int j = 0; j < rows; ++j)
                        for (int64_t t = 0; t < tokens; ++t)
                            out[t * ldo + r + j] -= min_term(m + j * ng, a.xs.data() + t * ng, ng);
            }
        }
    });
}

}  // namespace aprqa
