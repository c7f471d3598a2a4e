// Fused diff kernel (see diff.h for the exact conventions).
//
// Each thread owns a contiguous range of tiles. Per tile: both sides are
// dequantized into thread-local f32 buffers, a cheap all-finite check picks the
// AVX2 fast path (no NaN/Inf bookkeeping) or the scalar path, and the tile's
// double sums are pushed onto a pairwise-summation stack. The location of
// max|d| is found by rescanning a tile only when its max can win.
#include "diff.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "dequant.h"
#include "half.h"
#include "parallel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define APRQA_X86 1
#define AVX2 __attribute__((target("avx2,f16c,popcnt")))
#endif

namespace aprqa {

namespace {

constexpr int kSums = 7;  // sum_d, sum_abs, sum_sq, sum_a, sum_a2, sum_b2, sum_ab
constexpr size_t kTile = 8192;  // elements per plain / row tile (multiple of 256)

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
    uint64_t n_finite = 0, n_equal = 0, n_fail = 0;
    uint64_t nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0, nan_both = 0, mismatch = 0;
};

// Per-thread histogram, 8 interleaved copies so consecutive increments of the
// same bucket do not serialize on store forwarding.
struct Hist {
    uint64_t h[8][kHistBuckets];
    Hist() { std::memset(h, 0, sizeof h); }
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
                ++t.mismatch;
                ++t.n_fail;
            }
            if (hist) ++hist->h[0][63];
            continue;
        }
        const double a = af, b = bf, d = b - a, ad = std::fabs(d), aa = std::fabs(a);
        ++t.n_finite;
        t.s[0] += d;
        t.s[1] += ad;
        t.s[2] += d * d;
        t.s[3] += a;
        t.s[4] += a * a;
        t.s[5] += b * b;
        t.s[6] += a * b;
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
AVX2 bool all_finite_avx2(const float* A, const float* B, size_t n) {
    const __m256i em = _mm256_set1_epi32(0x7f800000);
    __m256i bad = _mm256_setzero_si256();
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + k));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + k));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(a, em), em));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(b, em), em));
    }
    if (!_mm256_testz_si256(bad, bad)) return false;
    for (; k < n; ++k)
        if (!std::isfinite(A[k]) || !std::isfinite(B[k])) return false;
    return true;
}

// Fast path for tiles where every element of both sides is finite.
AVX2 void stats_finite_avx2(const float* A, const float* B, size_t n, const DiffOptions& o, TileOut& t,
                            Hist* hist) {
    const __m256d sign = _mm256_set1_pd(-0.0), vatol = _mm256_set1_pd(o.atol), vrtol = _mm256_set1_pd(o.rtol);
    // s5 accumulates a*d; sum_b2 and sum_ab are derived per tile from it.
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0;
    __m256d vmax = s0, vmat = s0;
    __m256i vfail = _mm256_setzero_si256();
    const __m256i bias = _mm256_set1_epi32(1023 - 42), one = _mm256_set1_epi32(1), top = _mm256_set1_epi32(62);
    uint64_t eq = 0;
    alignas(32) int32_t bk[8];
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 af = _mm256_loadu_ps(A + k), bf = _mm256_loadu_ps(B + k);
        eq += (uint64_t)__builtin_popcount(_mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_castps_si256(af), _mm256_castps_si256(bf)))));
        __m256d adh[2];
        for (int h = 0; h < 2; ++h) {
            const __m256d a = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(af, 1) : _mm256_castps256_ps128(af));
            const __m256d b = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(bf, 1) : _mm256_castps256_ps128(bf));
            const __m256d d = _mm256_sub_pd(b, a);
            const __m256d ad = _mm256_andnot_pd(sign, d), aa = _mm256_andnot_pd(sign, a);
            s0 = _mm256_add_pd(s0, d);
            s1 = _mm256_add_pd(s1, ad);
            s2 = _mm256_add_pd(s2, _mm256_mul_pd(d, d));
            s3 = _mm256_add_pd(s3, a);
            s4 = _mm256_add_pd(s4, _mm256_mul_pd(a, a));
            s5 = _mm256_add_pd(s5, _mm256_mul_pd(a, d));
            vmax = _mm256_max_pd(vmax, ad);
            const __m256d m = _mm256_sub_pd(ad, _mm256_mul_pd(vrtol, aa));
            vfail = _mm256_sub_epi64(vfail, _mm256_castpd_si256(_mm256_cmp_pd(m, vatol, _CMP_GT_OQ)));
            vmat = _mm256_max_pd(vmat, m);
            adh[h] = ad;
        }
        if (hist) {
            // high dwords of the 8 doubles (order is irrelevant for a histogram) -> biased exponent
            const __m256i hi = _mm256_castps_si256(
                _mm256_shuffle_ps(_mm256_castpd_ps(adh[0]), _mm256_castpd_ps(adh[1]), _MM_SHUFFLE(3, 1, 3, 1)));
            const __m256i e = _mm256_srli_epi32(hi, 20);
            __m256i b = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(e, bias), one), top);
            b = _mm256_andnot_si256(_mm256_cmpeq_epi32(e, _mm256_setzero_si256()), b);
            _mm256_store_si256(reinterpret_cast<__m256i*>(bk), b);
            for (int j = 0; j < 8; ++j) ++hist->h[j][bk[j]];
        }
    }
    alignas(32) double buf[8][4];
    _mm256_store_pd(buf[0], s0);
    _mm256_store_pd(buf[1], s1);
    _mm256_store_pd(buf[2], s2);
    _mm256_store_pd(buf[3], s3);
    _mm256_store_pd(buf[4], s4);
    _mm256_store_pd(buf[5], s5);
    _mm256_store_pd(buf[6], vmax);
    _mm256_store_pd(buf[7], vmat);
    double r[6];
    for (int i = 0; i < 6; ++i) r[i] = (buf[i][0] + buf[i][1]) + (buf[i][2] + buf[i][3]);
    for (int i = 0; i < 5; ++i) t.s[i] += r[i];
    t.s[5] += (r[4] + 2.0 * r[5]) + r[2];  // sum b^2 = sum (a+d)^2
    t.s[6] += r[4] + r[5];                 // sum ab = sum a^2 + sum ad
    t.max_abs = std::fmax(t.max_abs, std::fmax(std::fmax(buf[6][0], buf[6][1]), std::fmax(buf[6][2], buf[6][3])));
    t.min_atol = std::fmax(t.min_atol, std::fmax(std::fmax(buf[7][0], buf[7][1]), std::fmax(buf[7][2], buf[7][3])));
    alignas(32) uint64_t fc[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(fc), vfail);
    t.n_fail += fc[0] + fc[1] + fc[2] + fc[3];
    t.n_equal += eq;
    t.n_finite += k;
    if (k < n) stats_scalar(A + k, B + k, n - k, o, t, hist);
}
#endif

void tile_stats(const float* A, const float* B, size_t n, const DiffOptions& o, TileOut& t, Hist* hist) {
#ifdef APRQA_X86
    if (o.simd && all_finite_avx2(A, B, n)) {
        stats_finite_avx2(A, B, n, o, t, hist);
        return;
    }
#endif
    stats_scalar(A, B, n, o, t, hist);
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

struct ThreadAcc {
    DiffResult r;
    bool has_max = false;
    Pairwise pw;
    Hist hist;
    std::vector<float> A, B, T;

    // Fold one tile; flat(k) maps a tile offset to the reference's flat index,
    // first is flat(0) (the smallest flat index in the tile).
    template <typename Flat>
    void add(const float* a, const float* b, size_t n, int64_t first, Flat flat, const DiffOptions& o) {
        TileOut t;
        tile_stats(a, b, n, o, t, o.histogram ? &hist : nullptr);
        r.n += n;
        r.n_equal += t.n_equal;
        r.n_finite += t.n_finite;
        r.n_fail += t.n_fail;
        r.nan_a += t.nan_a;
        r.nan_b += t.nan_b;
        r.inf_a += t.inf_a;
        r.inf_b += t.inf_b;
        r.nan_both += t.nan_both;
        r.nonfinite_mismatch += t.mismatch;
        if (t.min_atol > r.min_atol) r.min_atol = t.min_atol;
        pw.push(t.s);
        if (t.n_finite) {
            if (!has_max || t.max_abs > r.max_abs || (t.max_abs == r.max_abs && first < r.argmax)) {
                const int64_t idx = flat(find_first_abs(a, b, n, t.max_abs));
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
        r.sum_d = s[0];
        r.sum_abs = s[1];
        r.sum_sq = s[2];
        r.sum_a = s[3];
        r.sum_a2 = s[4];
        r.sum_b2 = s[5];
        r.sum_ab = s[6];
        for (int j = 0; j < 8; ++j)
            for (int i = 0; i < kHistBuckets; ++i) r.hist[i] += hist.h[j][i];
    }
};

DiffResult merge(std::vector<ThreadAcc>& accs) {
    // pairwise over threads as well
    std::vector<DiffResult> rs;
    std::vector<bool> has;
    for (auto& a : accs) {
        a.finish();
        rs.push_back(a.r);
        has.push_back(a.has_max);
    }
    while (rs.size() > 1) {
        std::vector<DiffResult> nx;
        std::vector<bool> nh;
        for (size_t i = 0; i + 1 < rs.size(); i += 2) {
            DiffResult x = rs[i];
            const DiffResult& y = rs[i + 1];
            x.n += y.n; x.n_equal += y.n_equal; x.n_finite += y.n_finite; x.n_fail += y.n_fail;
            x.nan_a += y.nan_a; x.nan_b += y.nan_b; x.inf_a += y.inf_a; x.inf_b += y.inf_b;
            x.nan_both += y.nan_both; x.nonfinite_mismatch += y.nonfinite_mismatch;
            x.sum_d += y.sum_d; x.sum_abs += y.sum_abs; x.sum_sq += y.sum_sq; x.sum_a += y.sum_a;
            x.sum_a2 += y.sum_a2; x.sum_b2 += y.sum_b2; x.sum_ab += y.sum_ab;
            x.min_atol = std::fmax(x.min_atol, y.min_atol);
            for (int k = 0; k < kHistBuckets; ++k) x.hist[k] += y.hist[k];
            bool hx = has[i], hy = has[i + 1];
            if (hy && (!hx || y.max_abs > x.max_abs || (y.max_abs == x.max_abs && y.argmax < x.argmax))) {
                x.max_abs = y.max_abs;
                x.argmax = y.argmax;
            }
            nx.push_back(x);
            nh.push_back(hx || hy);
        }
        if (rs.size() % 2) {
            nx.push_back(rs.back());
            nh.push_back(has.back());
        }
        rs.swap(nx);
        has.swap(nh);
    }
    DiffResult out = rs.empty() ? DiffResult{} : rs[0];
    if (out.nonfinite_mismatch) out.min_atol = std::numeric_limits<double>::infinity();
    return out;
}

}  // namespace

DiffResult diff_plain(DiffSide a, DiffSide b, uint64_t n, const DiffOptions& o) {
    const size_t ntiles = (size_t)((n + kTile - 1) / kTile);
    const int nt = std::max(1, std::min<int>(o.threads, (int)std::max<size_t>(ntiles, 1)));
    std::vector<ThreadAcc> accs(nt);
    parallel_slices(ntiles, nt, [&](int t, size_t lo, size_t hi) {
        ThreadAcc& acc = accs[t];
        acc.A.resize(kTile);
        acc.B.resize(kTile);
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t s = (uint64_t)i * kTile;
            const size_t len = (size_t)std::min<uint64_t>(kTile, n - s);
            dequant_range(a.dtype, a.base, s, len, acc.A.data(), o.simd);
            dequant_range(b.dtype, b.base, s, len, acc.B.data(), o.simd);
            acc.add(acc.A.data(), acc.B.data(), len, (int64_t)s, [&](size_t k) { return (int64_t)(s + k); }, o);
        }
    });
    return merge(accs);
}

DiffResult diff_row_perm(DiffSide a, DiffSide b, uint64_t rows, uint64_t cols, const int64_t* perm,
                         const DiffOptions& o) {
    const uint64_t per_row = (cols + kTile - 1) / kTile;
    const size_t ntiles = (size_t)(rows * per_row);
    const int nt = std::max(1, std::min<int>(o.threads, (int)std::max<size_t>(ntiles, 1)));
    std::vector<ThreadAcc> accs(nt);
    parallel_slices(ntiles, nt, [&](int t, size_t lo, size_t hi) {
        ThreadAcc& acc = accs[t];
        acc.A.resize(kTile);
        acc.B.resize(kTile);
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t r = i / per_row, c0 = (i % per_row) * kTile;
            const size_t len = (size_t)std::min<uint64_t>(kTile, cols - c0);
            const uint64_t sa = (uint64_t)perm[r] * cols + c0, sb = r * cols + c0;
            dequant_range(a.dtype, a.base, sa, len, acc.A.data(), o.simd);
            dequant_range(b.dtype, b.base, sb, len, acc.B.data(), o.simd);
            acc.add(acc.A.data(), acc.B.data(), len, (int64_t)sa, [&](size_t k) { return (int64_t)(sa + k); }, o);
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
    const int nt = std::max(1, std::min<int>(o.threads, (int)std::max<size_t>(ntiles, 1)));
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
            acc.add(A, B, tr * tc, first,
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
