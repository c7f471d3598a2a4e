// Per-row sums of a pair of float32 rows, the statistics the batched diagnosis screen reads
// (comparison/diagnose_batch.py): Σa², Σd², Σa·d, Σa, Σd with d = b − a rounded to float32.
// Each sum keeps eight float32 lanes (element e goes to lane e % 8; every product is rounded
// before it is added), and the lanes are added in double in a fixed order, so the AVX2 path
// returns exactly the scalar path's values and each sum is within (n/8 + 3)·2^-24 of the
// magnitude of its terms.
#pragma once
#include <cstddef>

namespace aprqa {

constexpr int kRowSums = 5;  // Σa², Σd², Σa·d, Σa, Σd, in this order

void row_pair_sums(const float* a, const float* b, size_t n, double out[kRowSums], bool simd);

}  // namespace aprqa
