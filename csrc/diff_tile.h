// Internals shared by the fused diff's driver and scalar reference (diff.cpp) and its AVX2
// kernels (diff_avx2.cpp). docs/core.md ("Kernel") has the design and the error bounds.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "diff.h"
#include "dtypes.h"
#include "half.h"

#if defined(__x86_64__) || defined(_M_X64)
#define APRQA_X86 1
#define AVX2 __attribute__((target("avx2,f16c,fma,popcnt")))
#endif

namespace aprqa {
namespace diff_detail {

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
inline const LUT kLut;

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

// One side of a piece: f32 values, or (AVX2 path only) a raw f16 payload.
struct PieceSide {
    const void* p;
    bool f16;
    const float* f32() const { return static_cast<const float*>(p); }
    const uint16_t* half() const { return static_cast<const uint16_t*>(p); }
};

// The scalar reference (diff.cpp): any values, full NaN/Inf bookkeeping.
void stats_scalar(const float* A, const float* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist);
// First k of a finite pair with |b-a| == target (exists by construction).
size_t find_first_abs(const float* A, const float* B, size_t n, double target);

#ifdef APRQA_X86
// AVX2+F16C+FMA available at run time (the kernels below need all three).
extern const bool kHaveFma;
// tile_stats / find_first on the AVX2 path (diff_avx2.cpp); sides may be raw f16.
void tile_stats_avx2(PieceSide a, PieceSide b, size_t n, const DiffOptions& o, TileOut& t, Hist* hist);
size_t find_first_avx2(PieceSide a, PieceSide b, size_t n, double target);
// Sum of n bytes (read_probe's kernel).
uint64_t sum_bytes_avx2(const uint8_t* p, size_t n);
#endif

}  // namespace diff_detail
}  // namespace aprqa
