// Fused one-pass comparison of two raw tensors of any dtypes. Pieces of both
// sides are dequantized into small thread-local f32 buffers (f16 is converted
// in registers, aligned f32 read in place) and reduced immediately; double sums
// are combined pairwise (piece -> thread -> total). Kernel notes: diff.cpp.
//
// Conventions (a = reference, b = candidate, d = b - a computed in double, exact):
// - n_equal counts identical f32 bit patterns after dequantization (+0 != -0,
//   a NaN equals only the same NaN bits).
// - A pair is "finite" when both sides are finite; only finite pairs enter the
//   sums, max|d|, min_atol and histogram buckets 0..62.
// - Non-finite pairs: both NaN, or the same infinity on both sides, is a match;
//   every other non-finite pair is a failure (counted in n_fail and
//   n_nonfinite_mismatch) and makes min_atol +inf. They land in bucket 63.
// - Failure of a finite pair: |d| - rtol*|a| > atol (double arithmetic), so an
//   element passes exactly when min_atol <= atol.
// - Histogram of |d| over finite pairs: bucket 0 = exactly 0; bucket 1 =
//   (0, 2^-40); bucket k in 2..61 = [2^(k-42), 2^(k-41)); bucket 62 = >= 2^20;
//   bucket 63 = non-finite pairs.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aprqa {

constexpr int kHistBuckets = 64;

struct DiffResult {
    uint64_t n = 0, n_equal = 0, n_finite = 0, n_fail = 0;
    uint64_t nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0, nan_both = 0, nonfinite_mismatch = 0;
    double sum_d = 0, sum_abs = 0, sum_sq = 0, sum_a = 0, sum_a2 = 0, sum_b2 = 0, sum_ab = 0;
    double sum_ad = 0;   // Σa·d, accumulated directly: 1 - cosine = (Σa²Σd² - (Σad)²) / (Σa²Σb²(1 + cos))
    double max_abs = 0;  // over finite pairs
    int64_t argmax = -1; // flat index into a (reference); -1 when no finite pair
    double min_atol = 0;  // smallest atol that passes at this rtol (inf if a non-finite mismatch)
    uint64_t hist[kHistBuckets] = {0};
};

struct DiffSide {
    int dtype;
    const uint8_t* base;  // payload start (validated)
};

struct DiffOptions {
    double atol = 0, rtol = 0;
    int threads = 1;
    bool simd = true;
    bool histogram = true;
};

// Plain: a and b both hold n elements in the same order.
DiffResult diff_plain(DiffSide a, DiffSide b, uint64_t n, const DiffOptions& opt);
// b is [cols, rows], compared with a [rows, cols] transposed: a[i,j] vs b[j,i].
DiffResult diff_transpose(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const DiffOptions& opt);
// b row i compared with a row perm[i]; both [rows, cols]; perm validated.
DiffResult diff_row_perm(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const int64_t* perm,
                         const DiffOptions& opt);

// Sum of bytes, the read-bandwidth probe for the benchmark.
uint64_t read_probe(const uint8_t* p, size_t n, int threads);

}  // namespace aprqa
