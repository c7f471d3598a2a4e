// Quantized matrix × activation products without expanding the weights to f32.
//
// As in ggml, a quantized weight row is multiplied against activations that are
// themselves quantized to 8-bit blocks of 32 (one f32 scale each): the block products
// are exact integer sums and the float work is one multiply-add per 32 products.
// Float weight rows (F32/F16/BF16) multiply f32 activations directly.
//
// Two activation modes for quantized rows:
//  * int8 (ggml's scheme, fastest): the arithmetic below;
//  * f32 ("exact"): the row is dequantized in cache (bit-equal to dequantize()) and multiplied
//    against the f32 activations like a float row, so the result is the dequantize-then-matmul
//    product within float32 rounding. Float rows: lane l (0..7) accumulates
//    acc[l] = fma(w[i], x[i], acc[l]) over i ≡ l (mod 8) in order, then the same fold as below.
//
// Every row of every supported type is first unpacked to one canonical form (exact:
// int8 values q, an f32 scale per 16 elements s, and for types with minimums an f32
// min per 16 m, so that dequant(w)[i] = s[i/16]*q[i] - m[i/16]). The dot of a row with
// one token's activation (int8 a, scale dx per 32, xs[g] = dx*Σ_g a) is then defined as:
//
//   lane l (0..7) of chunk c (32 elements): p = Σ_{k<4} q[32c+4l+k]·a[32c+4l+k]  (int, exact)
//   acc[l] = fma(float(p), s[(32c+4l)/16] * dx[c], acc[l])       (chunk order)
//   sum = ((acc0+acc4) + (acc2+acc6)) + ((acc1+acc5) + (acc3+acc7))
//   result = sum - Σ_g (m[g] * xs[g])      (sequential over g; only for types with mins)
//
// The scalar reference and the SIMD kernels compute exactly these operations in this
// order, so their results are bit-equal, whatever the thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aprqa {

constexpr int VD_CHUNK = 32;  // activation block (elements per f32 scale)
constexpr int VD_GROUP = 16;  // weight scale/min granularity of the canonical form

// Kernel levels: 0 scalar reference, 1 AVX2, 2 AVX-512 (VL+BW+VNNI, 256-bit lanes).
enum VecdotLevel : int { kVdScalar = 0, kVdAvx2 = 1, kVdAvx512 = 2 };

// One token-major batch of activations quantized to int8 blocks of 32.
struct ActQ8 {
    int64_t tokens = 0, n = 0;
    std::vector<int8_t> q;    // [tokens, n]
    std::vector<float> d;     // [tokens, n/32]
    std::vector<float> xs;    // [tokens, n/16]: d * Σ of the 16 ints
};

// Whether `dtype` rows go through the integer path (quantized) or the float path.
bool vecdot_int_supported(int dtype);
bool vecdot_float_supported(int dtype);
bool vecdot_supported(int dtype);
// Elements a row must be a multiple of for `dtype` (block size; 32 at least for int types).
int64_t vecdot_row_multiple(int dtype);

// Best level this CPU runs (capped by set_simd(false) -> scalar).
int vecdot_best_level();
std::string vecdot_level_name(int level);

// x: [tokens, n] f32 (n a multiple of 32).
void quantize_act(const float* x, int64_t tokens, int64_t n, ActQ8& out);

// out[t, r] = Σ_i w[r, i] * x[t, i] for rows [0, n_out) of a row-major weight of dtype
// (`w` holds exactly n_out rows of n_in elements; the caller checked its size). `ldo`: the
// row stride of `out` in floats (≥ n_out). level: a VecdotLevel (must be available).
// int8_act: quantize the activations (quantized dtypes only; float rows always use f32).
void vecdot_matmul(int dtype, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x, int64_t tokens,
                   float* out, int64_t ldo, int threads, int level, bool int8_act);

// ---- building blocks shared by vecdot.cpp and the SIMD files ---------------------------------

// Canonical unpacked rows: q [rows, n], s8 [rows, n/4] (the per-16 scale repeated over the 4
// lanes of a chunk that it covers: 8 floats per chunk), m [rows, n/16] (when the type has mins).
struct Unpacked {
    int64_t n = 0;
    bool has_min = false;
    int8_t* q = nullptr;
    uint8_t* aq = nullptr;  // |q| as u8 (the SIMD kernels' unsigned operand)
    float* s8 = nullptr;
    float* m = nullptr;
};

// Unpack one row (n elements) into the canonical form (q, s8, m of `u` for that row).
// level picks the SIMD unpacker where one exists (same values either way).
void unpack_row(int dtype, const uint8_t* row, int64_t n, int8_t* q, uint8_t* aq, float* s8, float* m, int level);
bool dtype_has_min(int dtype);

// K-quant 6-bit scale and min j (0..7) of Q4_K/Q5_K's 12 scale bytes.
inline void k4_scale_min(int j, const uint8_t* q, int& sc, int& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}
// Q3_K's signed 6-bit scale i (0..15) from its 12 scale bytes.
inline int q3k_scale(const uint8_t* sc, int i) {
    const int low4 = i < 8 ? (sc[i] & 0xF) : (sc[i - 8] >> 4);
    const int high2 = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low4 | (high2 << 4)) - 32;
}

// Σ_g m[g]*xs[g], sequential (the shared tail of every level).
inline float min_term(const float* m, const float* xs, int64_t groups) {
    float t = 0.0f;
    for (int64_t g = 0; g < groups; ++g) t = t + m[g] * xs[g];
    return t;
}

// Row-tile kernel signature: R rows already unpacked (q/aq/s8 per row, row stride n),
// all tokens; writes sums (before the min term) to out[t*ldo + r].
using TileFn = void (*)(int rows, const int8_t* q, const uint8_t* aq, const float* s8, int64_t n,
                        const ActQ8& a, float* out, int64_t ldo);
TileFn tile_kernel(int level);
// f32 rows (row stride n) × f32 activations: out[t*ldo + r] for `rows` rows, all tokens.
using F32TileFn = void (*)(int rows, const float* w, int64_t n, const float* x, int64_t tokens, float* out,
                           int64_t ldo);
F32TileFn f32_tile_kernel(int level);
// Canonical rows (q, s8, m16 with row strides n, n/4, n/16; m16 may be null) × f32 activations,
// each weight dequantized in registers exactly as DequantCanonFn would (the decode path).
using CanonTileFn = void (*)(int rows, const int8_t* q, const float* s8, const float* m16, int64_t n, const float* x,
                             int64_t tokens, float* out, int64_t ldo);
CanonTileFn canon_tile_kernel(int level);  // nullptr at the scalar level (dequant + f32 tile is the reference)
// Rows of `dtype` read straight from their blocks (row stride row_bytes) × f32 activations, with
// CanonTileFn's result bit for bit (the decode path of the per-32-scale types).
using DirectTileFn = void (*)(int rows, const uint8_t* w, size_t row_bytes, int64_t n, const float* x, int64_t tokens,
                              float* out, int64_t ldo);
DirectTileFn direct_tile_kernel(int level, int dtype);  // nullptr: no direct kernel (unpack + CanonTileFn)
// `rows` rows of a float dtype (F16/BF16/F32) as f32 into dst (row stride n).
using FloatRowsFn = void (*)(int dtype, const uint8_t* w, int rows, int64_t n, float* dst);
FloatRowsFn float_rows_kernel(int level);
// dst[i] = s16[i/16]*q[i] - m16[i/16] (m16 may be null): the dequantized row from its canonical form.
using DequantCanonFn = void (*)(const int8_t* q, const float* s8, const float* m16, int64_t n, float* dst);
DequantCanonFn dequant_canon_kernel(int level);

}  // namespace aprqa
