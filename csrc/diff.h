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
#include <vector>

namespace aprqa {

constexpr int kHistBuckets = 64;

// The statistics, listed once: these lists generate DiffResult's fields, the
// tile -> thread -> total merge (diff.cpp) and the Python binding (bindings.cpp,
// diff_fields()); aprqa.core derives DiffStats' merge rules from that binding.
// Counts (uint64) merge by addition.
#define APRQA_DIFF_COUNTS(X) \
    X(n) X(n_equal) X(n_finite) X(n_fail) X(nan_a) X(nan_b) X(inf_a) X(inf_b) X(nan_both) X(nonfinite_mismatch)
// Double sums over finite pairs, merge by (pairwise) addition. The AVX2 kernels in
// diff.cpp keep these in this order as s0..s7 (checked by static_asserts there).
// sum_ad = Σa·d, accumulated directly: 1 - cosine = (Σa²Σd² - (Σad)²) / (Σa²Σb²(1 + cos)).
#define APRQA_DIFF_SUMS(X) X(sum_d) X(sum_abs) X(sum_sq) X(sum_a) X(sum_a2) X(sum_b2) X(sum_ab) X(sum_ad)

// Index of each sum in the kernels' accumulator arrays.
enum DiffSum : int {
#define APRQA_X(f) kSum_##f,
    APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
    kSums
};

struct DiffResult {
#define APRQA_X(f) uint64_t f = 0;
    APRQA_DIFF_COUNTS(APRQA_X)
#undef APRQA_X
#define APRQA_X(f) double f = 0;
    APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
    // The fields below have their own merge rules (see diff_fields()).
    double max_abs = 0;  // over finite pairs; merge: max, ties to the smaller argmax
    int64_t argmax = -1; // flat index into a (reference) of max_abs; -1 when no finite pair
    double min_atol = 0;  // smallest atol that passes at this rtol (inf if a non-finite mismatch); merge: max
    uint64_t hist[kHistBuckets] = {0};  // merge: bucket-wise addition
};

// Adds y's counts, sums and histogram into x (the merge rules of the listed fields).
inline void add_counts_sums_hist(DiffResult& x, const DiffResult& y) {
#define APRQA_X(f) x.f += y.f;
    APRQA_DIFF_COUNTS(APRQA_X)
    APRQA_DIFF_SUMS(APRQA_X)
#undef APRQA_X
    for (int k = 0; k < kHistBuckets; ++k) x.hist[k] += y.hist[k];
}

struct DiffSide {
    int dtype;
    const uint8_t* base;  // payload start (validated)
    size_t nbytes = 0;    // payload bytes (validated); bounds the pages release_pages may drop
    bool release = false; // a read-only file mapping: drop each chunk's pages once it is done
};

struct DiffOptions {
    double atol = 0, rtol = 0;
    int threads = 1;
    bool simd = true;
    bool histogram = true;
    // diff_plain walks [0, n) in consecutive chunks of this many elements (a multiple of
    // kChunkQuantum; 0 = one chunk), dropping the pages of each `release` side after its chunk,
    // so a file-mapped tensor of any size keeps about one chunk resident.
    uint64_t chunk_elems = 0;
};

// Chunk lengths are multiples of this (a whole number of every dtype's blocks and of the
// kernel's pieces, so a chunked walk reads exactly the pieces of a one-chunk walk).
constexpr uint64_t kChunkQuantum = 2048;
// Elements per chunk so that both payloads of one chunk take about chunk_bytes: n when the pair
// fits, else a multiple of kChunkQuantum (at least one quantum).
uint64_t chunk_elems_for(int a_dtype, int b_dtype, uint64_t n, uint64_t chunk_bytes);
// madvise(MADV_DONTNEED) of the whole pages inside [p, p + nbytes) (no-op where unsupported).
// Only for read-only file mappings: dropped pages are re-read from the file on the next touch
// (anonymous memory would read back as zeros).
void release_pages(const uint8_t* p, size_t nbytes);

// Decoded values of one side at flat positions (strictly increasing, each < n; validated by the caller),
// written to out[j] for position at[j].
struct Capture {
    const int64_t* at = nullptr;
    size_t n = 0;
    float* out = nullptr;
};

// Per-row sums (row_sums.h: Σa², Σd², Σa·d, Σa, Σd) of rows of a plain pair's [n / cols, cols] view
// (strictly increasing, each < n / cols; validated by the caller) into out (n × kRowSums doubles), with
// b's bytes read as b_dtype: -1 for its own type, or another type of as many bytes per element, one
// element per block (a misread of b's bytes; validated by the caller).
struct RowSums {
    const int64_t* rows = nullptr;
    size_t n = 0;
    int b_dtype = -1;
    double* out = nullptr;
};

// What a plain pass also takes from the pieces it decodes, for a failing pair's diagnosis (instead of
// faulting its released pages back in later): row sums (a row split across pieces adds its parts in
// double) and each side's values at a few lists of positions (a, b: one Capture per screen).
struct RowSample {
    uint64_t cols = 0;
    std::vector<RowSums> sums;
    std::vector<Capture> a, b;
};

// Plain: a and b both hold n elements in the same order (walked in opt.chunk_elems chunks); with a
// sample, its rows' sums too.
DiffResult diff_plain(DiffSide a, DiffSide b, uint64_t n, const DiffOptions& opt, const RowSample* sample = nullptr);
// b is [cols, rows], compared with a [rows, cols] transposed: a[i,j] vs b[j,i].
DiffResult diff_transpose(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const DiffOptions& opt);
// b row i compared with a row perm[i]; both [rows, cols]; perm validated.
DiffResult diff_row_perm(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const int64_t* perm,
                         const DiffOptions& opt);

// Sum of bytes, the read-bandwidth probe for the benchmark.
uint64_t read_probe(const uint8_t* p, size_t n, int threads);

}  // namespace aprqa
