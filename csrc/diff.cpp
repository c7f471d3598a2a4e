// Fused diff kernel (see diff.h for the exact conventions).
//
// Work split: each thread owns one contiguous range of the tensor (threads are
// only started for >= kMinPerThread elements each) and walks it in pieces of
// kPiece elements. Both sides of a piece are dequantized into thread-local f32
// buffers (2 x 8 KiB, they stay in L1) and reduced at once; f32 sources that
// are 4-byte aligned are read in place, and on the AVX2 path a 2-byte aligned
// f16 source is read raw and converted in registers (F16C; a chunk holding a
// NaN/Inf is converted exactly in scalar code, payloads kept). A piece's
// double sums are pushed onto a
// pairwise-summation stack; stacks are combined pairwise across threads. The
// location of max|d| is found by rescanning a piece only when its max can win
// (vectorized on the AVX2 path).
//
// Every dtype pair on the AVX2 path (stats_f32acc): f32 lanes. The sides are raw
// f16 (converted in registers), f32 read in place, or a piece dequantized into
// the thread's L1 buffer (bf16, quantized, unaligned), all reduced in one pass.
// - Per chunk of kChunk32 = 256 elements, 8 f32 lanes: d = b - a, |d|, a with
//   adds; d², a², b², ab, ad with FMAs (one rounding per step). Each lane adds
//   32 terms, then the chunk's lanes are converted to double and added into the
//   piece's double lanes, which go onto the pairwise stack like every sum.
//   Bound: recursive summation of k = 32 terms in u = 2^-24 errs by at most
//   γ_32·Σ|term| (γ_k = k·u/(1 - k·u)), the double stages add < 2^-46, so each
//   sum is within 33·2^-24 ≈ 1.97e-6 of Σ|term| (tests use exactly that; 35·2^-24
//   for pairs other than two f16 sides, see below), plus
//   at most 2^-150 per term for results below f32's normal range (f16 pairs
//   never: their values are in [2^-24, 65504], products in [2^-48, 2^35]).
//   A term or lane sum that overflows f32 makes the chunk's sums non-finite:
//   such a chunk is redone in double.
// - Counts, max|d| and the histogram need the exact d (the double reference's).
//   One verification pass over the (L1-hot) chunk checks b - d == a and
//   a + d == b per element: by Fast2Sum both hold iff fl(b - a) is exact (a
//   NaN/Inf fails them too). Two f16 sides skip the pass when the chunk's max
//   |d| < 1: both are multiples of 2^-24, so d is k·2^-24 with k < 2^24, and
//   rounding is monotonic; an f16 chunk that fails is redone by the double
//   kernel below. With d exact, max|d| is the unsigned max of the f32 bits,
//   n_equal compares bits, and the histogram bucket is the f32 exponent - 85 (a
//   nonzero subnormal counts as exponent 1; clamped to 1..62, never needed for
//   f16 pairs). Other pairs (f32 values near zero next to a larger difference,
//   quantization noise) often hold a few rounded d: such a finite chunk keeps
//   its f32 sums, which then carry one more rounding of d per term (d, |d|, ad:
//   u, d²: 2u + u²; the bound becomes 35·2^-24 of Σ|term|), and takes |d| in
//   double for max|d|, the histogram and the tolerance (abs_d_double), so every
//   count stays exact. A chunk with a non-finite sum is redone in double.
// - min_atol / n_fail with rtol > 0: m32 = |d| - f32(rtol)·|a| (FMA) is within
//   2^-21.4·max|d| (+ 2^-150 below the normal range) of the double m for every
//   m >= 0 that can matter (there rtol·|a| <= |d|), so a chunk is rescanned in
//   double (fail_max_avx2: n_fail and the exact max m) only when
//   max m32 + 2^-20·max|d| + 2^-149 exceeds min(atol, running min_atol); the running value
//   is carried across pieces (TileOut starts at the thread's min_atol). rtol = 0:
//   m = |d| exactly, n_fail by a double rescan when max|d| > atol.
// - Σab and Σb² are direct sums (b ≈ 0 keeps them accurate); Σad is the extra
//   sum behind DiffStats.one_minus_cosine = (Σa²Σd² - (Σad)²)/(Σa²Σb²(1 + cos)),
//   which keeps 1 - cos to the sums' relative accuracy for close tensors.
//
// Double AVX2+FMA kernel (the chunks above that fail verification, and rtol
// outside f32's normal range), per chunk of up to kChunk elements (runtime-dispatched, the
// scalar path stays the reference and is tested equal):
// - Everything is computed optimistically in double, 4 lanes: d = b - a is the
//   same double subtraction as the float64 reference; Σd, Σ|d|, Σa accumulate
//   with adds, Σd², Σa², Σb², Σab, Σad with FMAs (one rounding per term instead of
//   two). Per-chunk accumulators are zeroed at each chunk start.
// - Non-finite check after the chunk: NaN/Inf propagate into Σd and Σa (a sum
//   of finite f32-derived values cannot overflow a double: |a| < 2^128, a chunk
//   sum < 2^137, |d|^2 < 2^258), so the chunk was all finite iff every lane of
//   Σd + Σa is finite. A non-finite chunk is discarded and redone by the scalar
//   path; only those chunks pay for NaN/Inf bookkeeping.
// - Accuracy: each double lane adds at most kChunk/4 = 256 terms, then chunk
//   lanes add into piece lanes (kPiece/kChunk = 2 adds), 4 lanes fold, then the
//   pairwise stack (log2 of the piece count). The error of each sum is thus
//   below ~(256 + 2 + 2 + log2 n) * 2^-53 * Σ|term| (< 4e-14 relative to Σ|term|
//   for any n below 2^40), against the exact math.fsum reference.
// - n_equal: _mm256_cmpeq_epi32 on the f32 bit patterns (+0 != -0); raw half
//   bits when both sides are f16 (f16 -> f32 is injective).
// - max|d|: vector max; min_atol: vector max of m = |d| - rtol*|a| (mul then
//   sub, bit-identical to the reference's rounded product); n_fail is counted
//   by a rescan of the chunk only when the chunk's max m exceeds atol.
// - Histogram: the bucket comes from the exponent bits of |d| in double (high
//   dword >> 20, saturating u16 arithmetic, no log2), packed to one byte per
//   element (f32 lanes: the f32 exponent; for two f16 sides the raw exponent
//   byte, bucket = byte - 85). Per chunk the vector min/max of the bytes gives
//   the occupied range [lo, hi]; it is counted in windows of 16 values from lo
//   (hist_count_bytes_avx2): one vpshufb per two buckets turns a byte's offset
//   in the window into +1 in the low or high nibble of a byte accumulator,
//   nibbles are split into 8-bit lane counters every 15 vectors (drained with
//   sad_epu8 before they can wrap), and bucket 0 (|d| == 0) is the rest. A
//   chunk spanning more than kVecBuckets buckets falls back to scalar
//   increments. Counts are exact.
#include "diff.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "blocks.h"
#include "dequant.h"
#include "dtypes.h"
#include "half.h"
#include "parallel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define APRQA_X86 1
#define AVX2 __attribute__((target("avx2,f16c,fma,popcnt")))
#endif

namespace aprqa {

namespace {

// The AVX2 kernels hold the sums as s0..s7 in APRQA_DIFF_SUMS order (diff.h).
static_assert(kSums == 8 && kSum_sum_d == 0 && kSum_sum_abs == 1 && kSum_sum_sq == 2 && kSum_sum_a == 3 &&
                  kSum_sum_a2 == 4 && kSum_sum_b2 == 5 && kSum_sum_ab == 6 && kSum_sum_ad == 7,
              "s0..s7 in the AVX2 kernels follow APRQA_DIFF_SUMS");
constexpr size_t kPiece = 2048;          // elements dequantized and reduced per step (multiple of 256)
constexpr size_t kChunk = 1024;          // AVX2 verification / histogram unit
constexpr uint64_t kMinPerThread = 65536;  // fewer elements per thread do not pay for a thread
constexpr int kVecBuckets = 48;          // wider chunks count their histogram with scalar increments
static_assert(kPiece % kChunk == 0 && kChunk % 32 == 0, "chunks tile a piece in whole byte vectors");
static_assert(kChunkQuantum % kPiece == 0, "a chunked walk reads the same pieces as one pass");
constexpr bool quantum_holds_whole_blocks() {
    for (const DTypeTraits& t : kDTypes)
        if (kChunkQuantum % t.block_elems != 0) return false;
    return true;
}
static_assert(quantum_holds_whole_blocks(), "chunks start on a block boundary of every dtype");
constexpr size_t kHistChunk = 2048;      // |d| of verified f32-lane chunks, histogrammed this many at a time
static_assert(kHistChunk / 32 <= 255 && kChunk <= kHistChunk, "one chunk must fit the 8-bit histogram lane counters");
static_assert(kChunk / 4 < (1u << 15), "per-lane counts of a chunk fit 16-bit lanes");

struct LUT {
    uint8_t bucket[2048];
    LUT() {
        for (int e = 0; e < 2048; ++e) {
            const int u = e - 1023;
            bucket[e] = e == 0 ? 0 : (u < -40 ? 1 : (u >= 20 ? 62 : (uint8_t)(u + 42)));
        }
    }
};
const LUT kLut;

inline int bucket_of(double ad) { return kLut.bucket[(f64_bits(ad) >> 52) & 0x7ff]; }

struct TileOut {
    double s[kSums] = {0};
    double max_abs = 0;
    double min_atol = 0;
#define APRQA_X(f) uint64_t f = 0;
    APRQA_DIFF_COUNTS(APRQA_X)  // n is set by the caller, the rest by the kernels
#undef APRQA_X
};

// Per-thread histogram: 8 interleaved u64 copies for scalar increments (so
// consecutive increments of one bucket do not serialize on store forwarding),
// plus 32 byte-lane counters per bucket for the vector path.
struct alignas(64) Hist {
    uint64_t h[8][kHistBuckets];
    alignas(32) uint8_t c8[kHistBuckets][32];
    int pending = 0;               // max count any byte lane may hold
    int touched_lo = kHistBuckets, touched_hi = -1;  // c8 rows written since the last drain
    Hist() {
        std::memset(h, 0, sizeof h);
        std::memset(c8, 0, sizeof c8);
    }
    void drain() {  // portable; the AVX2 path drains with sad_epu8 itself
        for (int k = touched_lo; k <= touched_hi; ++k)
            for (int j = 0; j < 32; ++j) {
                h[0][k] += c8[k][j];
                c8[k][j] = 0;
            }
        pending = 0;
        touched_lo = kHistBuckets;
        touched_hi = -1;
    }
};

// Generic path: any values, full NaN/Inf bookkeeping.
void stats_scalar(const float* A, const float* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    for (size_t k = 0; k < n; ++k) {
        const float af = A[k], bf = B[k];
        if (f32_bits(af) == f32_bits(bf)) ++t.n_equal;
        const bool fa = std::isfinite(af), fb = std::isfinite(bf);
        if (!(fa && fb)) {
            const bool na = std::isnan(af), nb = std::isnan(bf);
            t.nan_a += na;
            t.nan_b += nb;
            t.inf_a += std::isinf(af);
            t.inf_b += std::isinf(bf);
            if (na && nb) ++t.nan_both;
            else if (!(std::isinf(af) && std::isinf(bf) && af == bf)) {
                ++t.nonfinite_mismatch;
                ++t.n_fail;
            }
            if (hist) ++hist->h[0][63];
            continue;
        }
        const double a = af, b = bf, d = b - a, ad = std::fabs(d), aa = std::fabs(a);
        ++t.n_finite;
        t.s[kSum_sum_d] += d;
        t.s[kSum_sum_abs] += ad;
        t.s[kSum_sum_sq] += d * d;
        t.s[kSum_sum_a] += a;
        t.s[kSum_sum_a2] += a * a;
        t.s[kSum_sum_b2] += b * b;
        t.s[kSum_sum_ab] += a * b;
        t.s[kSum_sum_ad] += a * d;
        if (ad > t.max_abs) t.max_abs = ad;
        const double m = ad - o.rtol * aa;  // fails when m > atol; min_atol = max m
        if (m > o.atol) ++t.n_fail;
        if (m > t.min_atol) t.min_atol = m;
        if (hist) ++hist->h[k & 7][bucket_of(ad)];
    }
}

// First k of a finite pair with |b-a| == target (exists by construction).
size_t find_first_abs(const float* A, const float* B, size_t n, double target) {
    for (size_t k = 0; k < n; ++k) {
        if (!(std::isfinite(A[k]) && std::isfinite(B[k]))) continue;
        if (std::fabs((double)B[k] - (double)A[k]) == target) return k;
    }
    return 0;
}

#ifdef APRQA_X86
const bool kHaveFma = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
}();

AVX2 inline int hmin_epu8(__m256i v) {
    __m128i x = _mm_min_epu8(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 8));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 4));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 2));
    x = _mm_min_epu8(x, _mm_srli_si128(x, 1));
    return _mm_cvtsi128_si32(x) & 0xff;
}
AVX2 inline int hmax_epu8(__m256i v) {
    __m128i x = _mm_max_epu8(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 8));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 4));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 2));
    x = _mm_max_epu8(x, _mm_srli_si128(x, 1));
    return _mm_cvtsi128_si32(x) & 0xff;
}
AVX2 inline double hmax_pd(__m256d v) {
    __m128d x = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    x = _mm_max_pd(x, _mm_unpackhi_pd(x, x));
    return _mm_cvtsd_f64(x);
}
AVX2 inline uint64_t hsum_epi64(__m256i v) {
    const __m128i x = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(x) + (uint64_t)_mm_extract_epi64(x, 1);
}

AVX2 void drain_avx2(Hist& h) {
    const __m256i z = _mm256_setzero_si256();
    for (int k = h.touched_lo; k <= h.touched_hi; ++k) {
        __m256i* row = reinterpret_cast<__m256i*>(h.c8[k]);
        h.h[0][k] += hsum_epi64(_mm256_sad_epu8(_mm256_load_si256(row), z));
        _mm256_store_si256(row, z);
    }
    h.pending = 0;
    h.touched_lo = kHistBuckets;
    h.touched_hi = -1;
}

// Nibble tables for count_window_avx2: table t maps byte offset 2t to 0x01 and 2t + 1 to 0x10 (the
// low / high nibble counter of one byte lane), every other offset to 0; both 128-bit halves alike.
struct NibbleTables {
    alignas(32) uint8_t t[8][32];
    NibbleTables() {
        std::memset(t, 0, sizeof t);
        for (int k = 0; k < 8; ++k)
            for (int half = 0; half < 32; half += 16) {
                t[k][half + 2 * k] = 0x01;
                t[k][half + 2 * k + 1] = 0x10;
            }
    }
};
const NibbleTables kNibble;

// Counts the bytes of by[0..nv) equal to base .. base + 2T - 1 into the 8-bit lane counters
// rows[0 .. 2T) (rows[j] counts value base + j) and adds the counted bytes per lane to tot.
// off = adds_epu8(by - base, 0x70) keeps offsets 0..15 as 0x70..0x7F and sends every other
// byte (below base, zero, or base + 16 and up: base is 1..240) to 0x80 and above, which
// vpshufb maps to 0; table t turns offsets 2t / 2t + 1 into +1 in the low / high nibble of
// a byte accumulator, so one shuffle and one add count two buckets. A nibble holds 15:
// the accumulators are split into the 8-bit rows after every 15 vectors.
template <int T>
AVX2 inline void count_window_avx2(const __m256i* by, size_t nv, int base, uint8_t (*rows)[32], __m256i& tot) {
    static_assert(T >= 1 && T <= 8, "one window: at most 16 buckets");
    const __m256i vbase = _mm256_set1_epi8((char)base), c70 = _mm256_set1_epi8(0x70);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i tab[T];
    for (int t = 0; t < T; ++t) tab[t] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kNibble.t[t]));
    for (size_t v0 = 0; v0 < nv; v0 += 15) {
        const size_t v1 = std::min(nv, v0 + 15);
        __m256i acc[T];
        for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_si256();
        for (size_t v = v0; v < v1; ++v) {
            const __m256i off = _mm256_adds_epu8(_mm256_sub_epi8(_mm256_load_si256(by + v), vbase), c70);
            for (int t = 0; t < T; ++t) acc[t] = _mm256_add_epi8(acc[t], _mm256_shuffle_epi8(tab[t], off));
        }
        for (int t = 0; t < T; ++t) {
            const __m256i c0 = _mm256_and_si256(acc[t], low4);
            const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(acc[t], 4), low4);
            __m256i* r0 = reinterpret_cast<__m256i*>(rows[2 * t]);
            __m256i* r1 = reinterpret_cast<__m256i*>(rows[2 * t + 1]);
            _mm256_store_si256(r0, _mm256_add_epi8(_mm256_load_si256(r0), c0));
            _mm256_store_si256(r1, _mm256_add_epi8(_mm256_load_si256(r1), c1));
            tot = _mm256_add_epi8(tot, _mm256_add_epi8(c0, c1));
        }
    }
}

// Counts the bytes by[0..nv) (32 per vector): a byte v is 0 (bucket 0) or bias + its
// bucket, and the nonzero bytes lie in [lo, hi] (1 <= lo, hi <= bias + 62, bias + 62 <= 240).
// Windows of 16 values from lo are counted by count_window_avx2 (two buckets per shuffle),
// bucket 0 is the rest; a range wider than kVecBuckets counts with scalar increments.
AVX2 void hist_count_bytes_avx2(const __m256i* by, size_t nv, int lo, int hi, int bias, Hist& h) {
    if (hi >= lo && hi - lo + 1 > kVecBuckets) {
        const uint8_t* bb = reinterpret_cast<const uint8_t*>(by);
        for (size_t i = 0; i < 32 * nv; ++i) ++h.h[i & 7][bb[i] ? bb[i] - bias : 0];
        return;
    }
    if (h.pending + (int)nv > 255) drain_avx2(h);
    h.pending += (int)nv;
    __m256i tot = _mm256_setzero_si256();
    for (int base = lo; base <= hi; base += 16) {
        uint8_t(*rows)[32] = h.c8 + (base - bias);
        switch ((std::min(hi, base + 15) - base + 2) / 2) {  // shuffles needed: the last may count one row beyond hi
            case 1: count_window_avx2<1>(by, nv, base, rows, tot); break;
            case 2: count_window_avx2<2>(by, nv, base, rows, tot); break;
            case 3: count_window_avx2<3>(by, nv, base, rows, tot); break;
            case 4: count_window_avx2<4>(by, nv, base, rows, tot); break;
            case 5: count_window_avx2<5>(by, nv, base, rows, tot); break;
            case 6: count_window_avx2<6>(by, nv, base, rows, tot); break;
            case 7: count_window_avx2<7>(by, nv, base, rows, tot); break;
            default: count_window_avx2<8>(by, nv, base, rows, tot); break;
        }
    }
    __m256i* row0 = reinterpret_cast<__m256i*>(h.c8[0]);  // each byte lane saw nv bytes
    _mm256_store_si256(row0, _mm256_add_epi8(_mm256_load_si256(row0),
                                             _mm256_sub_epi8(_mm256_set1_epi8((char)nv), tot)));
    h.touched_lo = 0;
    h.touched_hi = std::max(h.touched_hi, hi >= lo ? hi - bias + 1 : 0);
}

// Biased exponents in 16-bit lanes (x0, x1) -> bucket bytes: 0 if e == 0
// (|d| == 0), else clamp(e - bias_off, 1, 62); updates the byte min/max.
AVX2 inline __m256i bucket_bytes(__m256i x0, __m256i x1, __m256i cofs, __m256i& vlo, __m256i& vhi) {
    const __m256i one16 = _mm256_set1_epi16(1), c62 = _mm256_set1_epi16(62), one8 = _mm256_set1_epi8(1);
    const __m256i b0 =
        _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(x0, cofs), _mm256_min_epu16(x0, one16)), c62);
    const __m256i b1 =
        _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(x1, cofs), _mm256_min_epu16(x1, one16)), c62);
    const __m256i by = _mm256_packus_epi16(b0, b1);  // lane order is irrelevant for a histogram
    vlo = _mm256_min_epu8(vlo, _mm256_sub_epi8(by, one8));  // bucket 0 -> 255
    vhi = _mm256_max_epu8(vhi, by);
    return by;
}

// Histogram of one verified chunk from |d| (finite doubles, sign clear).
// len is a multiple of 8, at most kChunk.
AVX2 void hist_chunk_avx2(const double* ad, size_t len, Hist& h) {
    const size_t nv = len / 32;
    if (nv) {
        const __m256i c981 = _mm256_set1_epi16(1023 - 42);
        alignas(32) __m256i by[kChunk / 32];
        __m256i vlo = _mm256_set1_epi8(-1), vhi = _mm256_setzero_si256();
        for (size_t v = 0; v < nv; ++v) {
            // high dwords of 8 doubles (lane order is irrelevant for a histogram)
            auto hi8 = [&](size_t q) AVX2 {
                const float* p = reinterpret_cast<const float*>(ad + 32 * v + 8 * q);
                return _mm256_castps_si256(
                    _mm256_shuffle_ps(_mm256_load_ps(p), _mm256_load_ps(p + 8), _MM_SHUFFLE(3, 1, 3, 1)));
            };
            // biased exponent (0..2047, sign bit is clear)
            const __m256i e0 = _mm256_srli_epi32(hi8(0), 20), e1 = _mm256_srli_epi32(hi8(1), 20);
            const __m256i e2 = _mm256_srli_epi32(hi8(2), 20), e3 = _mm256_srli_epi32(hi8(3), 20);
            by[v] = bucket_bytes(_mm256_packs_epi32(e0, e1), _mm256_packs_epi32(e2, e3), c981, vlo, vhi);
        }
        hist_count_bytes_avx2(by, nv, hmin_epu8(vlo) + 1, hmax_epu8(vhi), 0, h);
    }
    for (size_t i = 32 * nv; i < len; ++i) ++h.h[i & 7][bucket_of(ad[i])];
}

// Same from |d| as f32 (sign clear, finite). kF16Pair: |d| of two f16 values is 0 or
// in [2^-24, 2^18), biased exponent e in {0} u [103, 144], so the byte is e itself and
// the bucket e - (127 - 42) (18..59 for nonzero |d|, never clamped): bias 85. Otherwise
// e is 0..254 and a nonzero subnormal |d| has e = 0: the byte is the bucket, 0 for
// |d| == 0, else clamp(max(e, 1) - 85, 1, 62) (bucket 1 below 2^-40, 62 from 2^20 up).
// len is a multiple of 32.
template <bool kF16Pair>
AVX2 void hist_chunk_f32_avx2(const float* ad, size_t len, Hist& h) {
    const size_t nv = len / 32;
    const __m256i c85 = _mm256_set1_epi16(127 - 42), one8 = _mm256_set1_epi8(1), one32 = _mm256_set1_epi32(1);
    const __m256i one16 = _mm256_set1_epi16(1), c62 = _mm256_set1_epi16(62);
    alignas(32) __m256i by[kHistChunk / 32];
    __m256i vlo = _mm256_set1_epi8(-1), vhi = _mm256_setzero_si256();
    for (size_t v = 0; v < nv; ++v) {
        const float* p = ad + 32 * v;
        __m256i e[4];
        for (int q = 0; q < 4; ++q) {
            const __m256i bits = _mm256_castps_si256(_mm256_load_ps(p + 8 * q));
            e[q] = _mm256_srli_epi32(bits, 23);
            // a nonzero subnormal counts as exponent 1 (so bucket 1 below), zero stays 0
            if (!kF16Pair) e[q] = _mm256_max_epu32(e[q], _mm256_min_epu32(bits, one32));
        }
        __m256i x0 = _mm256_packs_epi32(e[0], e[1]), x1 = _mm256_packs_epi32(e[2], e[3]);  // 0..255: exact
        if (!kF16Pair) {  // nonzero |d| -> at least bucket 1, at most 62
            const __m256i z0 = x0, z1 = x1;
            x0 = _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(z0, c85), _mm256_min_epu16(z0, one16)), c62);
            x1 = _mm256_min_epu16(_mm256_max_epu16(_mm256_subs_epu16(z1, c85), _mm256_min_epu16(z1, one16)), c62);
        }
        by[v] = _mm256_packus_epi16(x0, x1);  // lane order is irrelevant for a histogram
        vlo = _mm256_min_epu8(vlo, _mm256_sub_epi8(by[v], one8));  // zero -> 255
        vhi = _mm256_max_epu8(vhi, by[v]);
    }
    hist_count_bytes_avx2(by, nv, hmin_epu8(vlo) + 1, hmax_epu8(vhi), kF16Pair ? 127 - 42 : 0, h);
}

// Sides as the AVX2 kernel reads them: f32 values, or a raw IEEE half payload
// converted on the fly with F16C (no buffer round trip for f16 tensors).
AVX2 inline __m256d load4_pd(const float* p, size_t j) { return _mm256_cvtps_pd(_mm_loadu_ps(p + j)); }
AVX2 inline __m256d load4_pd(const uint16_t* p, size_t j) {
    return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + j))));
}
AVX2 inline __m256i load8_bits(const float* p, size_t j) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j));
}
AVX2 inline __m256i load8_bits(const uint16_t* p, size_t j) {
    return _mm256_castps_si256(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j))));
}

AVX2 inline __m256 load8_ps(const float* p, size_t j) { return _mm256_loadu_ps(p + j); }
AVX2 inline __m256 load8_ps(const uint16_t* p, size_t j) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j)));
}

// f32 values of len elements of a side: in place for f32, exact scalar
// conversion (NaN payloads kept, as dequant_f16_ref) into buf for f16.
inline const float* materialize(const float* p, size_t, float*) { return p; }
inline const float* materialize(const uint16_t* p, size_t len, float* buf) {
    for (size_t i = 0; i < len; ++i) buf[i] = f16_to_f32(p[i]);
    return buf;
}

// Failures in a verified all-finite chunk (same double ops as stats_scalar).
template <typename TA, typename TB>
AVX2 uint64_t count_fail_avx2(const TA* A, const TB* B, size_t len, const DiffOptions& o) {
    const __m256d sign = _mm256_set1_pd(-0.0), vatol = _mm256_set1_pd(o.atol), vrtol = _mm256_set1_pd(o.rtol);
    uint64_t n = 0;
    for (size_t j = 0; j < len; j += 4) {
        const __m256d a = load4_pd(A, j), b = load4_pd(B, j);
        const __m256d ad = _mm256_andnot_pd(sign, _mm256_sub_pd(b, a)), aa = _mm256_andnot_pd(sign, a);
        const __m256d m = _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, aa));
        n += (uint64_t)__builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(m, vatol, _CMP_GT_OQ)));
    }
    return n;
}

// n_equal of a verified all-finite chunk: identical f32 bit patterns. For two
// f16 sides the half bits are compared directly (f16 -> f32 is injective).
template <typename TA, typename TB>
AVX2 uint64_t count_equal_avx2(const TA* A, const TB* B, size_t len) {
    __m256i veq = _mm256_setzero_si256();
    for (size_t j = 0; j < len; j += 8)
        veq = _mm256_sub_epi32(veq, _mm256_cmpeq_epi32(load8_bits(A, j), load8_bits(B, j)));
    const __m128i e = _mm_add_epi32(_mm256_castsi256_si128(veq), _mm256_extracti128_si256(veq, 1));
    return (uint64_t)(uint32_t)(_mm_cvtsi128_si32(e) + _mm_extract_epi32(e, 1) + _mm_extract_epi32(e, 2) +
                                _mm_extract_epi32(e, 3));
}
template <>
AVX2 uint64_t count_equal_avx2<uint16_t, uint16_t>(const uint16_t* A, const uint16_t* B, size_t len) {
    __m256i veq = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 16 <= len; j += 16)
        veq = _mm256_sub_epi16(veq, _mm256_cmpeq_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + j)),
                                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + j))));
    // 16-bit lanes hold at most kChunk/16 = 64; widen and add
    const __m256i w = _mm256_madd_epi16(veq, _mm256_set1_epi16(1));
    const __m128i e = _mm_add_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    uint64_t n = (uint64_t)(uint32_t)(_mm_cvtsi128_si32(e) + _mm_extract_epi32(e, 1) + _mm_extract_epi32(e, 2) +
                                      _mm_extract_epi32(e, 3));
    for (; j < len; ++j) n += A[j] == B[j];
    return n;
}

// One piece (n elements): chunks of kChunk, each verified all-finite or redone
// by stats_scalar. kRtol = false when rtol == 0, so that m = |d| and the
// tolerance work folds into max|d|. The loop body keeps 9 accumulators and 5
// temporaries in the 16 ymm registers (no spills: a spilled accumulator turns
// into a store-forwarding chain).
template <bool kRtol, typename TA, typename TB>
AVX2 void stats_avx2(const TA* A, const TB* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    const __m256d sign = _mm256_set1_pd(-0.0), vrtol = _mm256_set1_pd(o.rtol), zero = _mm256_setzero_pd();
    const __m256d vatol = _mm256_set1_pd(o.atol);
    __m256d P[kSums], Pmax = zero, Pmat = zero;  // piece accumulators
    for (int i = 0; i < kSums; ++i) P[i] = zero;
    uint64_t n_fin = 0, n_eq = 0, n_fail = 0;
    alignas(32) double adb[kChunk];  // |d| of the chunk, for the histogram
    size_t k = 0;
    const size_t n8 = n - n % 8;
    while (k < n8) {
        const size_t len = std::min(kChunk, n8 - k);
        const TA* a0 = A + k;
        const TB* b0 = B + k;
        __m256d s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero, vmax = zero,
                vmat = zero;
        for (size_t j = 0; j < len; j += 4) {
            const __m256d a = load4_pd(a0, j);
            const __m256d b = load4_pd(b0, j);
            const __m256d d = _mm256_sub_pd(b, a);
            const __m256d ad = _mm256_andnot_pd(sign, d);
            s0 = _mm256_add_pd(s0, d);
            s1 = _mm256_add_pd(s1, ad);
            s2 = _mm256_fmadd_pd(d, d, s2);
            s3 = _mm256_add_pd(s3, a);
            s4 = _mm256_fmadd_pd(a, a, s4);
            s5 = _mm256_fmadd_pd(b, b, s5);
            s6 = _mm256_fmadd_pd(a, b, s6);
            s7 = _mm256_fmadd_pd(a, d, s7);
            vmax = _mm256_max_pd(vmax, ad);
            if (kRtol)
                vmat = _mm256_max_pd(vmat, _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, _mm256_andnot_pd(sign, a))));
            if (hist) _mm256_store_pd(adb + j, ad);
        }
        if (!kRtol) vmat = vmax;
        // all lanes finite <=> x * 0 == 0 in every lane
        const __m256d x = _mm256_add_pd(s0, s3);
        if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_mul_pd(x, zero), zero, _CMP_EQ_OQ)) != 0xf) {
            float fa[kChunk], fb[kChunk];
            stats_scalar(materialize(a0, len, fa), materialize(b0, len, fb), len, o, t, hist);
            k += len;
            continue;
        }
        P[0] = _mm256_add_pd(P[0], s0);
        P[1] = _mm256_add_pd(P[1], s1);
        P[2] = _mm256_add_pd(P[2], s2);
        P[3] = _mm256_add_pd(P[3], s3);
        P[4] = _mm256_add_pd(P[4], s4);
        P[5] = _mm256_add_pd(P[5], s5);
        P[6] = _mm256_add_pd(P[6], s6);
        P[7] = _mm256_add_pd(P[7], s7);
        Pmax = _mm256_max_pd(Pmax, vmax);
        Pmat = _mm256_max_pd(Pmat, vmat);
        if (_mm256_movemask_pd(_mm256_cmp_pd(vmat, vatol, _CMP_GT_OQ)))  // some m > atol in the chunk
            n_fail += count_fail_avx2(a0, b0, len, o);
        n_eq += count_equal_avx2(a0, b0, len);
        n_fin += len;
        if (hist) hist_chunk_avx2(adb, len, *hist);
        k += len;
    }
    alignas(32) double buf[kSums][4];
    for (int i = 0; i < kSums; ++i) _mm256_store_pd(buf[i], P[i]);
    for (int i = 0; i < kSums; ++i) t.s[i] += (buf[i][0] + buf[i][1]) + (buf[i][2] + buf[i][3]);
    // lanes only hold finite values >= 0 here: plain comparisons (std::fmax is a libm call)
    const double mx = hmax_pd(Pmax), mt = hmax_pd(Pmat);
    if (mx > t.max_abs) t.max_abs = mx;
    if (mt > t.min_atol) t.min_atol = mt;
    t.n_finite += n_fin;
    t.n_equal += n_eq;
    t.n_fail += n_fail;
    if (n8 < n) {
        float fa[8], fb[8];
        stats_scalar(materialize(A + n8, n - n8, fa), materialize(B + n8, n - n8, fb), n - n8, o, t, hist);
    }
}

// ---- f32 lane accumulators, every pair (see the header comment) ----
constexpr size_t kChunk32 = 256;  // elements per f32 accumulation chunk: 32 terms per lane
static_assert(kChunk32 % 32 == 0 && kHistChunk % kChunk32 == 0, "f32 chunks fill the histogram buffer");

AVX2 inline float hmax_ps(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

// Failures and the exact max of m = |d| - rtol*|a| of a verified all-finite
// chunk (the same double ops as stats_scalar).
template <typename TA, typename TB>
AVX2 uint64_t fail_max_avx2(const TA* A, const TB* B, size_t len, const DiffOptions& o, double& maxm) {
    const __m256d sign = _mm256_set1_pd(-0.0), vatol = _mm256_set1_pd(o.atol), vrtol = _mm256_set1_pd(o.rtol);
    __m256d vm = _mm256_setzero_pd();
    uint64_t n = 0;
    for (size_t j = 0; j < len; j += 4) {
        const __m256d a = load4_pd(A, j), b = load4_pd(B, j);
        const __m256d ad = _mm256_andnot_pd(sign, _mm256_sub_pd(b, a)), aa = _mm256_andnot_pd(sign, a);
        const __m256d m = _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, aa));
        n += (uint64_t)__builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(m, vatol, _CMP_GT_OQ)));
        vm = _mm256_max_pd(vm, m);
    }
    maxm = hmax_pd(vm);  // >= 0 (vm starts at 0), like the clamped min_atol
    return n;
}

// |d| in double (the reference's d) of a finite chunk into ad; returns its max.
template <typename TA, typename TB>
AVX2 double abs_d_double(const TA* A, const TB* B, size_t len, double* ad) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d vm = _mm256_setzero_pd();
    for (size_t j = 0; j < len; j += 4) {
        const __m256d x = _mm256_andnot_pd(sign, _mm256_sub_pd(load4_pd(B, j), load4_pd(A, j)));
        _mm256_store_pd(ad + j, x);
        vm = _mm256_max_pd(vm, x);
    }
    return hmax_pd(vm);
}

// True when every f32 difference b - a of the chunk is exact and finite:
// fl(b - a) is exact <=> b - d == a and a + d == b (Fast2Sum: z = fl(s - x) is
// exact for |x| >= |y|, so the order that applies decides, and an exact d
// passes both); a NaN or Inf fails one of the two compares.
template <typename TA, typename TB>
AVX2 bool chunk_exact(const TA* A, const TB* B, size_t len) {
    __m256 bad = _mm256_setzero_ps();
    for (size_t j = 0; j < len; j += 8) {
        const __m256 a = load8_ps(A, j), b = load8_ps(B, j);
        const __m256 d = _mm256_sub_ps(b, a);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(_mm256_sub_ps(b, d), a, _CMP_NEQ_UQ),
                                             _mm256_cmp_ps(_mm256_add_ps(a, d), b, _CMP_NEQ_UQ)));
    }
    return _mm256_movemask_ps(bad) == 0;
}

// One piece in chunks of kChunk32 with f32 lane sums (header comment). TA/TB:
// float (f32 read in place, or a dequantized buffer) or uint16_t (raw f16).
// Chunks that hold a NaN/Inf, a difference not exact in f32 or a sum that
// overflows f32 are redone by stats_avx2 (double).
template <bool kRtol, typename TA, typename TB>
AVX2 void stats_f32acc(const TA* A, const TB* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    constexpr bool kF16Pair = std::is_same<TA, uint16_t>::value && std::is_same<TB, uint16_t>::value;
    const __m256 sign = _mm256_set1_ps(-0.0f), zf = _mm256_setzero_ps();
    const __m256 vrtol = _mm256_set1_ps((float)o.rtol);
    __m256d P[kSums];
    for (int i = 0; i < kSums; ++i) P[i] = _mm256_setzero_pd();
    __m256 Pmax = zf;
    uint64_t n_fin = 0, n_eq = 0, n_fail = 0;
    alignas(32) float adb[kHistChunk];  // |d| of verified chunks, histogrammed kHistChunk at a time
    alignas(32) double dd[kChunk32];  // |d| in double of an inexact chunk
    double dmax = 0;                  // max |d| over inexact chunks
    size_t fill = 0;
    const size_t nc = n - n % kChunk32;
    for (size_t k = 0; k < nc; k += kChunk32) {
        const TA* a0 = A + k;
        const TB* b0 = B + k;
        __m256 s0 = zf, s1 = zf, s2 = zf, s3 = zf, s4 = zf, s5 = zf, s6 = zf, s7 = zf, vmat = zf;
        __m256i vmax = _mm256_setzero_si256();  // max |d| as unsigned bits (NaN above every finite value)
        for (size_t j = 0; j < kChunk32; j += 8) {
            const __m256 a = load8_ps(a0, j);
            const __m256 b = load8_ps(b0, j);
            const __m256 d = _mm256_sub_ps(b, a);
            const __m256 ad = _mm256_andnot_ps(sign, d);
            // unsigned max of the bits of values >= 0 is their float max; a NaN stays the max
            vmax = _mm256_max_epu32(vmax, _mm256_castps_si256(ad));
            s0 = _mm256_add_ps(s0, d);
            s1 = _mm256_add_ps(s1, ad);
            s3 = _mm256_add_ps(s3, a);
            s2 = _mm256_fmadd_ps(d, d, s2);
            s4 = _mm256_fmadd_ps(a, a, s4);
            s5 = _mm256_fmadd_ps(b, b, s5);
            s6 = _mm256_fmadd_ps(a, b, s6);
            s7 = _mm256_fmadd_ps(a, d, s7);
            if (kRtol) vmat = _mm256_max_ps(vmat, _mm256_fnmadd_ps(vrtol, _mm256_andnot_ps(sign, a), ad));
            if (hist) _mm256_store_ps(adb + fill + j, ad);
        }
        bool redo, inexact = false;  // inexact: finite, but some f32 d is rounded (never for f16 pairs)
        if (kF16Pair) {
            // every d is exact when max |d| < 1 (header comment); else verify (NaN/Inf land here too);
            // f16 terms cannot overflow an f32 lane sum
            redo = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(vmax, _mm256_set1_epi32(0x3f7fffff)))) &&
                   !chunk_exact(a0, b0, kChunk32);
        } else {
            // all lane sums finite (x * 0 == 0): a, b and every d32 are finite
            const __m256 x = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                                           _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
            redo = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_mul_ps(x, zf), zf, _CMP_EQ_OQ)) != 0xff;
            inexact = !redo && !chunk_exact(a0, b0, kChunk32);
        }
        if (redo) {
            stats_avx2<kRtol>(a0, b0, kChunk32, o, t, hist);
            continue;
        }
        const __m256 sv[kSums] = {s0, s1, s2, s3, s4, s5, s6, s7};
        for (int i = 0; i < kSums; ++i)
            P[i] = _mm256_add_pd(P[i], _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(sv[i])),
                                                     _mm256_cvtps_pd(_mm256_extractf128_ps(sv[i], 1))));
        double cmax;  // exact max |d| of the chunk
        if (inexact) {  // the sums keep d32 (one more rounding, header comment); |d| for the rest in double
            cmax = abs_d_double(a0, b0, kChunk32, dd);
            if (cmax > dmax) dmax = cmax;
        } else {
            Pmax = _mm256_max_ps(Pmax, _mm256_castsi256_ps(vmax));
            cmax = hmax_ps(_mm256_castsi256_ps(vmax));
        }
        if (kRtol) {
            // |m32 - m| < 2^-20 * cmax + 2^-149 for every m that can matter (header comment)
            if ((double)hmax_ps(vmat) + cmax * 0x1p-20 + 0x1p-149 > std::min(o.atol, t.min_atol)) {
                double mx = 0;
                n_fail += fail_max_avx2(a0, b0, kChunk32, o, mx);
                if (mx > t.min_atol) t.min_atol = mx;
            }
        } else if (cmax > o.atol) {
            n_fail += count_fail_avx2(a0, b0, kChunk32, o);
        }
        n_eq += count_equal_avx2(a0, b0, kChunk32);
        n_fin += kChunk32;
        if (hist && inexact) {
            hist_chunk_avx2(dd, kChunk32, *hist);
        } else if (hist && (fill += kChunk32) == kHistChunk) {
            hist_chunk_f32_avx2<kF16Pair>(adb, fill, *hist);
            fill = 0;
        }
    }
    if (hist && fill) hist_chunk_f32_avx2<kF16Pair>(adb, fill, *hist);
    alignas(32) double buf[kSums][4];
    for (int i = 0; i < kSums; ++i) _mm256_store_pd(buf[i], P[i]);
    for (int i = 0; i < kSums; ++i) t.s[i] += (buf[i][0] + buf[i][1]) + (buf[i][2] + buf[i][3]);
    const double mx = std::max<double>(hmax_ps(Pmax), dmax);
    if (mx > t.max_abs) t.max_abs = mx;
    if (!kRtol && mx > t.min_atol) t.min_atol = mx;  // m = |d| when rtol == 0
    t.n_finite += n_fin;
    t.n_equal += n_eq;
    t.n_fail += n_fail;
    if (nc < n) stats_avx2<kRtol>(A + nc, B + nc, n - nc, o, t, hist);
}

template <typename TA, typename TB>
AVX2 void stats_lanes(const TA* A, const TB* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
    if (!(o.rtol > 0))
        stats_f32acc<false>(A, B, n, o, t, hist);
    else if (o.rtol >= 1e-30 && o.rtol <= 1e30)  // rtol is a normal f32 (bound on m32 holds)
        stats_f32acc<true>(A, B, n, o, t, hist);
    else
        stats_avx2<true>(A, B, n, o, t, hist);
}

// find_first_abs on the AVX2 path, sides as the kernel reads them (raw f16 converted with F16C: a
// NaN's payload may change, but a pair holding a NaN or Inf never has |b - a| == target, which is finite).
inline float value_at(const float* p, size_t i) { return p[i]; }
inline float value_at(const uint16_t* p, size_t i) { return f16_to_f32(p[i]); }
template <typename TA, typename TB>
AVX2 size_t find_first_abs_avx2(const TA* A, const TB* B, size_t n, double target) {
    const __m256d sign = _mm256_set1_pd(-0.0), t = _mm256_set1_pd(target);
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const __m256d ad = _mm256_andnot_pd(sign, _mm256_sub_pd(load4_pd(B, k), load4_pd(A, k)));
        const int m = _mm256_movemask_pd(_mm256_cmp_pd(ad, t, _CMP_EQ_OQ));
        if (m) return k + (size_t)__builtin_ctz((unsigned)m);
    }
    for (; k < n; ++k)
        if (std::fabs((double)value_at(B, k) - (double)value_at(A, k)) == target) return k;
    return 0;
}
#endif

// One side of a piece: f32 values, or (AVX2 path only) a raw f16 payload.
struct PieceSide {
    const void* p;
    bool f16;
    const float* f32() const { return static_cast<const float*>(p); }
    const uint16_t* half() const { return static_cast<const uint16_t*>(p); }
};

void tile_stats(PieceSide a, PieceSide b, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
#ifdef APRQA_X86
    if (o.simd && kHaveFma) {
        if (a.f16 && b.f16) stats_lanes(a.half(), b.half(), n, o, t, hist);
        else if (a.f16) stats_lanes(a.half(), b.f32(), n, o, t, hist);
        else if (b.f16) stats_lanes(a.f32(), b.half(), n, o, t, hist);
        else stats_lanes(a.f32(), b.f32(), n, o, t, hist);
        return;
    }
#endif
    stats_scalar(a.f32(), b.f32(), n, o, t, hist);  // raw f16 sides only exist on the AVX2 path
}

// First k < n of a finite pair with |b - a| == target (a finite max|d| of the piece).
size_t find_first(PieceSide a, PieceSide b, size_t n, double target, const DiffOptions& o) {
#ifdef APRQA_X86
    if (o.simd && kHaveFma) {
        if (a.f16 && b.f16) return find_first_abs_avx2(a.half(), b.half(), n, target);
        if (a.f16) return find_first_abs_avx2(a.half(), b.f32(), n, target);
        if (b.f16) return find_first_abs_avx2(a.f32(), b.half(), n, target);
        return find_first_abs_avx2(a.f32(), b.f32(), n, target);
    }
#endif
    return find_first_abs(a.f32(), b.f32(), n, target);  // raw f16 sides only exist on the AVX2 path
}

// Pairwise combination of per-tile double sums: a binary-counter stack.
struct Pairwise {
    struct Node {
        int level;
        double s[kSums];
    };
    Node st[72];
    int top = 0;
    void push(const double* s) {
        Node nd{0, {}};
        std::memcpy(nd.s, s, sizeof nd.s);
        while (top > 0 && st[top - 1].level == nd.level) {
            Node& p = st[--top];
            for (int i = 0; i < kSums; ++i) nd.s[i] = p.s[i] + nd.s[i];
            ++nd.level;
        }
        st[top++] = nd;
    }
    void result(double* out) const {
        double acc[kSums] = {0};
        for (int j = top - 1; j >= 0; --j)
            for (int i = 0; i < kSums; ++i) acc[i] = st[j].s[i] + acc[i];
        std::memcpy(out, acc, sizeof acc);
    }
};

// One per thread; cache-line aligned so threads never share a line of accumulators.
struct alignas(64) ThreadAcc {
    DiffResult r;
    bool has_max = false;
    Pairwise pw;
    Hist hist;
    std::vector<float> A, B, T;

    // Fold one tile; flat(k) maps a tile offset to the reference's flat index,
    // first is flat(0) (the smallest flat index in the tile).
    template <typename Flat>
    void add(PieceSide a, PieceSide b, size_t n, int64_t first, Flat flat, const DiffOptions& o) {
        TileOut t;
        t.n = n;
        t.min_atol = r.min_atol;  // running max so far: the f16 kernel skips chunks that cannot raise it
        tile_stats(a, b, n, o, t, o.histogram ? &hist : nullptr);
#define APRQA_X(f) r.f += t.f;
        APRQA_DIFF_COUNTS(APRQA_X)
#undef APRQA_X
        if (t.min_atol > r.min_atol) r.min_atol = t.min_atol;
        pw.push(t.s);
        if (t.n_finite) {
            if (!has_max || t.max_abs > r.max_abs || (t.max_abs == r.max_abs && first < r.argmax)) {
                const int64_t idx = flat(find_first(a, b, n, t.max_abs, o));
                if (!has_max || t.max_abs > r.max_abs || idx < r.argmax) {
                    r.max_abs = t.max_abs;
                    r.argmax = idx;
                    has_max = true;
                }
            }
        }
    }
    void finish() {
        double s[kSums];
        pw.result(s);
#define APRQA_X(f) r.f = s[kSum_##f];
        APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
        hist.drain();
        for (int j = 0; j < 8; ++j)
            for (int i = 0; i < kHistBuckets; ++i) r.hist[i] += hist.h[j][i];
    }
};

// x <- x merged with y, the result of the elements after x's (or of another
// thread's later slice): counts, sums and histogram add, min_atol is the max,
// max_abs the max with ties to the smaller argmax (argmax < 0: no finite pair).
void combine(DiffResult& x, const DiffResult& y) {
    add_counts_sums_hist(x, y);
    x.min_atol = std::fmax(x.min_atol, y.min_atol);
    if (y.argmax >= 0 && (x.argmax < 0 || y.max_abs > x.max_abs || (y.max_abs == x.max_abs && y.argmax < x.argmax))) {
        x.max_abs = y.max_abs;
        x.argmax = y.argmax;
    }
}

DiffResult merge(std::vector<ThreadAcc>& accs) {
    // pairwise over threads as well
    std::vector<DiffResult> rs;
    for (auto& a : accs) {
        a.finish();
        rs.push_back(a.r);
    }
    while (rs.size() > 1) {
        std::vector<DiffResult> nx;
        for (size_t i = 0; i + 1 < rs.size(); i += 2) {
            nx.push_back(rs[i]);
            combine(nx.back(), rs[i + 1]);
        }
        if (rs.size() % 2) nx.push_back(rs.back());
        rs.swap(nx);
    }
    DiffResult out = rs.empty() ? DiffResult{} : rs[0];
    if (out.nonfinite_mismatch) out.min_atol = std::numeric_limits<double>::infinity();
    return out;
}

// Threads for n elements: at most `requested`, each given >= kMinPerThread elements.
int threads_for(uint64_t n, int requested) {
    const uint64_t cap = std::max<uint64_t>(1, n / kMinPerThread);
    return (int)std::min<uint64_t>((uint64_t)std::max(requested, 1), cap);
}

// One side of a piece from element `start`: a 2-byte aligned raw f16 payload
// on the AVX2 path (converted in registers), f32 read in place when 4-byte aligned, else
// dequantized into buf.
PieceSide load_side(const DiffSide& s, uint64_t start, size_t len, float* buf, const DiffOptions& o) {
#ifdef APRQA_X86
    if (s.dtype == kF16 && o.simd && kHaveFma && reinterpret_cast<uintptr_t>(s.base) % 2 == 0)
        return {s.base + start * 2, true};
#endif
    if (s.dtype == kF32) {
        const uint8_t* p = s.base + start * 4;
        if (reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) return {p, false};
    }
    dequant_range(s.dtype, s.base, start, len, buf, o.simd);
    return {buf, false};
}

// Byte offset of element `start` (a multiple of kChunkQuantum, so of every block) in a payload.
uint64_t byte_offset(int dtype, uint64_t start) {
    if (dtype == kAprQ8) return (uint64_t)APR_Q8_HEADER_BYTES + start;
    const DTypeTraits& t = dtype_or_throw(dtype);
    return start / t.block_elems * t.block_bytes;
}

// Elements [start, start + n) of both sides, one parallel pass; argmax is a flat index.
DiffResult diff_range(const DiffSide& a, const DiffSide& b, uint64_t start, uint64_t n, const DiffOptions& o) {
    const size_t ntiles = (size_t)((n + kPiece - 1) / kPiece);
    const int nt = threads_for(n, o.threads);
    std::vector<ThreadAcc> accs(nt);
    parallel_slices(ntiles, nt, [&](int t, size_t lo, size_t hi) {
        ThreadAcc& acc = accs[t];
        acc.A.resize(kPiece);
        acc.B.resize(kPiece);
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t s = start + (uint64_t)i * kPiece;
            const size_t len = (size_t)std::min<uint64_t>(kPiece, start + n - s);
            const PieceSide pa = load_side(a, s, len, acc.A.data(), o);
            const PieceSide pb = load_side(b, s, len, acc.B.data(), o);
            acc.add(pa, pb, len, (int64_t)s, [&](size_t k) { return (int64_t)(s + k); }, o);
        }
    });
    return merge(accs);
}

// Drops the pages of side s's elements [lo, hi) (clipped to its payload).
void release_chunk(const DiffSide& s, uint64_t lo, uint64_t hi, bool last) {
    if (!s.release) return;
    const uint64_t b0 = std::min<uint64_t>(byte_offset(s.dtype, lo), s.nbytes);
    const uint64_t b1 = last ? s.nbytes : std::min<uint64_t>(byte_offset(s.dtype, hi), s.nbytes);
    release_pages(s.base + b0, (size_t)(b1 - b0));
}

}  // namespace

uint64_t chunk_elems_for(int a_dtype, int b_dtype, uint64_t n, uint64_t chunk_bytes) {
    const unsigned __int128 both = (unsigned __int128)storage_bytes(a_dtype, n) + storage_bytes(b_dtype, n);
    const unsigned __int128 e = both ? (unsigned __int128)chunk_bytes * n / both : n;
    if (e >= n) return n;  // one chunk
    return std::max<uint64_t>((uint64_t)e / kChunkQuantum * kChunkQuantum, kChunkQuantum);
}

void release_pages(const uint8_t* p, size_t nbytes) {
#if defined(__unix__) || defined(__APPLE__)
    static const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + nbytes) / page * page;
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // advisory: errors ignored
#else
    (void)p;
    (void)nbytes;
#endif
}

DiffResult diff_plain(DiffSide a, DiffSide b, uint64_t n, const DiffOptions& o) {
    const uint64_t step = o.chunk_elems ? o.chunk_elems : n;
    DiffResult total;
    Pairwise sums;  // chunk sums combine pairwise, like pieces and threads
    for (uint64_t c0 = 0; c0 < n; c0 += step) {
        const uint64_t c1 = std::min(n, c0 + step);
        const DiffResult r = diff_range(a, b, c0, c1 - c0, o);
        combine(total, r);
        double s[kSums] = {
#define APRQA_X(f) r.f,
            APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
        };
        sums.push(s);
        release_chunk(a, c0, c1, c1 == n);
        release_chunk(b, c0, c1, c1 == n);
    }
    double s[kSums];
    sums.result(s);
#define APRQA_X(f) total.f = s[kSum_##f];
    APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
    if (total.nonfinite_mismatch) total.min_atol = std::numeric_limits<double>::infinity();
    return total;
}

DiffResult diff_row_perm(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const int64_t* perm,
                         const DiffOptions& o) {
    const uint64_t per_row = (cols + kPiece - 1) / kPiece;
    const size_t ntiles = (size_t)(rows * per_row);
    const int nt = threads_for(rows * cols, o.threads);
    std::vector<ThreadAcc> accs(nt);
    parallel_slices(ntiles, nt, [&](int t, size_t lo, size_t hi) {
        ThreadAcc& acc = accs[t];
        acc.A.resize(kPiece);
        acc.B.resize(kPiece);
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t r = i / per_row, c0 = (i % per_row) * kPiece;
            const size_t len = (size_t)std::min<uint64_t>(kPiece, cols - c0);
            const uint64_t sa = (uint64_t)perm[r] * cols + c0, sb = r * cols + c0;
            const PieceSide pa = load_side(a, sa, len, acc.A.data(), o);
            const PieceSide pb = load_side(b, sb, len, acc.B.data(), o);
            acc.add(pa, pb, len, (int64_t)sa, [&](size_t k) { return (int64_t)(sa + k); }, o);
        }
    });
    return merge(accs);
}

DiffResult diff_transpose(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const DiffOptions& o) {
    // a: [rows, cols] (blocks along cols); b: [cols, rows] (blocks along rows).
    // Tile edges must sit on block boundaries of each side's rows: 256 covers all.
    const uint64_t TR = 256, TC = 256;
    const uint64_t nr = (rows + TR - 1) / TR, nc = (cols + TC - 1) / TC;
    const size_t ntiles = (size_t)(nr * nc);
    const int nt = threads_for(rows * cols, o.threads);
    std::vector<ThreadAcc> accs(nt);
    parallel_slices(ntiles, nt, [&](int t, size_t lo, size_t hi) {
        ThreadAcc& acc = accs[t];
        acc.A.resize(TR * TC);
        acc.B.resize(TR * TC);
        acc.T.resize(TR * TC);
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t r0 = (i / nc) * TR, c0 = (i % nc) * TC;
            const size_t tr = (size_t)std::min<uint64_t>(TR, rows - r0), tc = (size_t)std::min<uint64_t>(TC, cols - c0);
            float* A = acc.A.data();
            float* B = acc.B.data();
            float* T = acc.T.data();
            for (size_t r = 0; r < tr; ++r) dequant_range(a.dtype, a.base, (r0 + r) * cols + c0, tc, A + r * tc, o.simd);
            for (size_t c = 0; c < tc; ++c) dequant_range(b.dtype, b.base, (c0 + c) * rows + r0, tr, T + c * tr, o.simd);
            for (size_t r = 0; r < tr; ++r)
                for (size_t c = 0; c < tc; ++c) B[r * tc + c] = T[c * tr + r];
            const int64_t first = (int64_t)(r0 * cols + c0);
            acc.add({A, false}, {B, false}, tr * tc, first,
                    [&](size_t k) { return (int64_t)((r0 + k / tc) * cols + c0 + k % tc); }, o);
        }
    });
    return merge(accs);
}

#ifdef APRQA_X86
AVX2 static uint64_t sum_bytes_avx2(const uint8_t* p, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    const __m256i z = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_sad_epu8(x, z), _mm256_sad_epu8(y, z)));
    }
    alignas(32) uint64_t v[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), acc);
    uint64_t s = v[0] + v[1] + v[2] + v[3];
    for (; i < n; ++i) s += p[i];
    return s;
}
#endif

uint64_t read_probe(const uint8_t* p, size_t n, int threads) {
    std::vector<uint64_t> part((size_t)std::max(threads, 1), 0);
    parallel_slices(n, threads, [&](int t, size_t lo, size_t hi) {
        uint64_t s = 0;
#ifdef APRQA_X86
        if (simd_enabled()) {
            part[t] = sum_bytes_avx2(p + lo, hi - lo);
            return;
        }
#endif
        for (size_t i = lo; i < hi; ++i) s += p[i];
        part[t] = s;
    });
    uint64_t s = 0;
    for (uint64_t v : part) s += v;
    return s;
}

}  // namespace aprqa
