// Fused diff kernel (conventions: diff.h): the driver (threads, pieces, pairwise sums, ranges) and the
// scalar reference; the AVX2 kernels are in diff_avx2.cpp. Design and error bounds: docs/core.md ("Kernel").
#include "diff.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "blocks.h"
#include "dequant.h"
#include "diff_tile.h"
#include "dtypes.h"
#include "half.h"
#include "parallel.h"
#include "row_sums.h"

namespace aprqa {

namespace diff_detail {

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

size_t find_first_abs(const float* A, const float* B, size_t n, double target) {
    for (size_t k = 0; k < n; ++k) {
        if (!(std::isfinite(A[k]) && std::isfinite(B[k]))) continue;
        if (std::fabs((double)B[k] - (double)A[k]) == target) return k;
    }
    return 0;
}

}  // namespace diff_detail

namespace {

using namespace diff_detail;

void tile_stats(PieceSide a, PieceSide b, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
#ifdef APRQA_X86
    if (o.simd && kHaveFma) return tile_stats_avx2(a, b, n, o, t, hist);
#endif
    stats_scalar(a.f32(), b.f32(), n, o, t, hist);  // raw f16 sides only exist on the AVX2 path
}

// First k < n of a finite pair with |b - a| == target (a finite max|d| of the piece).
size_t find_first(PieceSide a, PieceSide b, size_t n, double target, const DiffOptions& o) {
#ifdef APRQA_X86
    if (o.simd && kHaveFma) return find_first_avx2(a, b, n, target);
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
    std::vector<std::vector<double>> row_sums;  // each RowSums' over this thread's pieces
    std::vector<float> reread;                  // b's bytes read as another type

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

// Elements [lo, lo + n) of a piece that starts at element s, as float32: in the piece's decoded buffer,
// or, for a side the AVX2 kernel reads as raw f16, converted into buf (that side leaves buf unused).
const float* piece_segment(const DiffSide& side, PieceSide p, uint64_t s, uint64_t lo, size_t n, float* buf,
                           const DiffOptions& o) {
    if (!p.f16) return p.f32() + (lo - s);
    dequant_range(side.dtype, side.base, lo, n, buf, o.simd);
    return buf;
}

// A thread's place in a RowSample as its pieces ascend: the first sampled row that does not end before
// the current piece, and each capture's first position not before it (no division per piece:
// a 64-bit divide costs more than the sums of a row's few pieces).
struct SampleCursor {
    std::vector<size_t> sums, a, b;  // per RowSums, per capture of each side

    SampleCursor() = default;
    SampleCursor(const RowSample& rs, uint64_t first) {
        const int64_t first_row = (int64_t)(first / rs.cols);
        for (const RowSums& t : rs.sums) sums.push_back((size_t)(std::lower_bound(t.rows, t.rows + t.n, first_row) - t.rows));
        for (const Capture& c : rs.a) a.push_back(first_at(c, first));
        for (const Capture& c : rs.b) b.push_back(first_at(c, first));
    }
    static size_t first_at(const Capture& c, uint64_t first) {
        return (size_t)(std::lower_bound(c.at, c.at + c.n, (int64_t)first) - c.at);
    }
    // The first element at or after `end` that some list needs (a row's start, or `end` itself while a
    // row runs on past it; a captured position): the pieces before it are skipped with one compare.
    uint64_t next_event(const RowSample& rs, uint64_t end) const {
        uint64_t next = UINT64_MAX;
        for (size_t k = 0; k < rs.sums.size(); ++k) {
            const RowSums& t = rs.sums[k];
            size_t r = sums[k];
            while (r < t.n && ((uint64_t)t.rows[r] + 1) * rs.cols <= end) ++r;
            if (r < t.n) next = std::min(next, std::max<uint64_t>((uint64_t)t.rows[r] * rs.cols, end));
        }
        for (size_t k = 0; k < rs.a.size(); ++k)
            if (a[k] < rs.a[k].n) next = std::min(next, (uint64_t)rs.a[k].at[a[k]]);
        for (size_t k = 0; k < rs.b.size(); ++k)
            if (b[k] < rs.b[k].n) next = std::min(next, (uint64_t)rs.b[k].at[b[k]]);
        return next;
    }
};

// Adds the row sums of one RowSums' rows' segments inside piece [s, s + len) to the thread's (out):
// b's segment from the piece, or, read as another type, decoded from its bytes into reread.
void add_row_sums(const RowSums& t, uint64_t cols, size_t& row, const DiffSide& a, const DiffSide& b,
                  PieceSide pa, PieceSide pb, uint64_t s, size_t len, ThreadAcc& acc, double* out,
                  const DiffOptions& o) {
    while (row < t.n && ((uint64_t)t.rows[row] + 1) * cols <= s) ++row;  // rows that ended before
    for (size_t k = row; k < t.n && (uint64_t)t.rows[k] * cols < s + len; ++k) {
        const uint64_t lo = std::max<uint64_t>(s, (uint64_t)t.rows[k] * cols);
        const size_t n = (size_t)(std::min<uint64_t>(s + len, ((uint64_t)t.rows[k] + 1) * cols) - lo);
        const float* fa = piece_segment(a, pa, s, lo, n, acc.A.data(), o);
        const float* fb = nullptr;
        if (t.b_dtype < 0) {
            fb = piece_segment(b, pb, s, lo, n, acc.B.data(), o);
        } else {
            acc.reread.resize(kPiece);
            dequant_range(t.b_dtype, b.base, lo, n, acc.reread.data(), o.simd);  // one element per block
            fb = acc.reread.data();
        }
        double part[kRowSums];
        row_pair_sums(fa, fb, n, part, o.simd);
        for (int m = 0; m < kRowSums; ++m) out[k * kRowSums + m] += part[m];
    }
}

// Copies the captured positions inside piece [s, s + len) of one side (from cursor j on), a run of
// consecutive ones at a time (each position lies in one piece: threads write disjoint slots).
void capture_values(const Capture& c, size_t& j, const DiffSide& side, PieceSide p, uint64_t s, size_t len,
                    const DiffOptions& o) {
    while (j < c.n && (uint64_t)c.at[j] < s + len) {
        size_t run = j + 1;
        while (run < c.n && c.at[run] == c.at[run - 1] + 1 && (uint64_t)c.at[run] < s + len) ++run;
        const uint64_t at = (uint64_t)c.at[j];
        if (p.f16 && run - j < 16) {  // a few scattered elements: converted here, not through a kernel call
            for (size_t m = j; m < run; ++m) {
                uint16_t h;
                std::memcpy(&h, side.base + 2 * (uint64_t)c.at[m], 2);
                c.out[m] = f16_to_f32(h);
            }
        } else if (p.f16)
            dequant_range(side.dtype, side.base, at, run - j, c.out + j, o.simd);
        else
            std::memcpy(c.out + j, p.f32() + (at - s), (run - j) * sizeof(float));
        j = run;
    }
}

// Elements [start, start + n) of both sides, one parallel pass; argmax is a flat index. A sample's
// rows inside the range add their sums to each RowSums' out (threads' parts in thread order) and its
// captured positions inside it are written.
DiffResult diff_range(const DiffSide& a, const DiffSide& b, uint64_t start, uint64_t n, const DiffOptions& o,
                      const RowSample* sample) {
    const size_t ntiles = (size_t)((n + kPiece - 1) / kPiece);
    const int nt = threads_for(n, o.threads);
    std::vector<ThreadAcc> accs(nt);
    parallel_slices(ntiles, nt, [&](int t, size_t lo, size_t hi) {
        ThreadAcc& acc = accs[t];
        acc.A.resize(kPiece);
        acc.B.resize(kPiece);
        if (sample)
            for (const RowSums& t : sample->sums) acc.row_sums.emplace_back(t.n * kRowSums, 0.0);
        SampleCursor cur = sample ? SampleCursor(*sample, start + (uint64_t)lo * kPiece) : SampleCursor{};
        uint64_t event = sample ? cur.next_event(*sample, start + (uint64_t)lo * kPiece) : UINT64_MAX;
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t s = start + (uint64_t)i * kPiece;
            const size_t len = (size_t)std::min<uint64_t>(kPiece, start + n - s);
            const PieceSide pa = load_side(a, s, len, acc.A.data(), o);
            const PieceSide pb = load_side(b, s, len, acc.B.data(), o);
            acc.add(pa, pb, len, (int64_t)s, [&](size_t k) { return (int64_t)(s + k); }, o);
            if (event < s + len) {  // the sample needs something in this piece
                for (size_t k = 0; k < sample->sums.size(); ++k)
                    add_row_sums(sample->sums[k], sample->cols, cur.sums[k], a, b, pa, pb, s, len, acc,
                                 acc.row_sums[k].data(), o);
                for (size_t k = 0; k < sample->a.size(); ++k) capture_values(sample->a[k], cur.a[k], a, pa, s, len, o);
                for (size_t k = 0; k < sample->b.size(); ++k) capture_values(sample->b[k], cur.b[k], b, pb, s, len, o);
                event = cur.next_event(*sample, s + len);
            }
        }
    });
    if (sample)
        for (const ThreadAcc& acc : accs)
            for (size_t k = 0; k < acc.row_sums.size(); ++k)
                for (size_t j = 0; j < acc.row_sums[k].size(); ++j) sample->sums[k].out[j] += acc.row_sums[k][j];
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

DiffResult diff_plain(DiffSide a, DiffSide b, uint64_t n, const DiffOptions& o, const RowSample* sample) {
    const uint64_t step = o.chunk_elems ? o.chunk_elems : n;
    DiffResult total;
    Pairwise sums;  // chunk sums combine pairwise, like pieces and threads
    for (uint64_t c0 = 0; c0 < n; c0 += step) {
        const uint64_t c1 = std::min(n, c0 + step);
        const DiffResult r = diff_range(a, b, c0, c1 - c0, o, sample);
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

uint64_t read_probe(const uint8_t* p, size_t n, int threads) {
    std::vector<uint64_t> part((size_t)std::max(threads, 1), 0);
    parallel_slices(n, threads, [&](int t, size_t lo, size_t hi) {
        uint64_t s = 0;
#ifdef APRQA_X86
        if (simd_enabled()) {
            part[t] = diff_detail::sum_bytes_avx2(p + lo, hi - lo);
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
