// Dequantization to float32: per-type scalar `dequant_<type>_ref`, AVX2+F16C
// `dequant_<type>_avx2` variants with the same signature, and one dispatch
// function. Kernels take pointers that the caller has already bounds-checked
// (see storage_bytes / check_range); they never allocate or throw.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace aprqa {

// Decodes `nblocks` whole blocks (elements, for plain types) from src into dst.
using DequantFn = void (*)(const uint8_t* src, float* dst, size_t nblocks);

struct DequantKernel {
    DequantFn ref;   // scalar reference, always present for supported types
    DequantFn simd;  // AVX2 variant or nullptr
};

// Kernel pair for a dtype id; {nullptr, nullptr} when dequantization is unsupported.
DequantKernel dequant_kernel(int dtype);
bool dequant_supported(int dtype);
// Throws std::invalid_argument "unsupported dtype <name> for dequantization".
void require_dequant(int dtype);

// SIMD selection at run time (never -march=native). set_simd(false) forces the
// scalar path; APRQA_NO_SIMD=1 in the environment does the same at load time.
bool simd_available();
bool simd_enabled();
void set_simd(bool on);
std::string simd_level();

// Bytes a tensor of n elements occupies. Same as payload_bytes() except APR q4,
// whose last block is zero-padded (ceil(n/32) blocks). Throws on partial blocks
// for every other block type and on overflow.
size_t storage_bytes(int dtype, uint64_t n);

// Decode elements [start, start+count) of one tensor whose payload begins at
// `base` (validated: the caller checked storage_bytes(dtype, n_total) bytes and
// start+count <= n_total). Partial leading/trailing blocks are decoded through a
// small stack buffer, so any start is allowed.
void dequant_range(int dtype, const uint8_t* base, uint64_t start, size_t count, float* out, bool simd);

}  // namespace aprqa
