// Quantizers from float32. Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 are byte-identical to ggml's
// reference (and gguf-py, which rounds half away from zero); Q4_K/Q5_K/Q6_K follow
// ggml's reference search (make_qkx2_quants / make_qx_quants); APR q4/q8 follow
// docs/format-facts.md §1. Kernels get validated pointers and never throw.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aprqa {

struct DTypeTraits;
// A tensor-level quantizer (the quantizer column of dtypes.h's rows): n floats into out.
using QuantFn = void (*)(const DTypeTraits& t, const float* x, size_t n, uint8_t* out, int threads);

bool quant_supported(int dtype);
// Throws std::invalid_argument "unsupported dtype <name> for quantization".
void require_quant(int dtype);

// Quantize n floats into out (storage_bytes(dtype, n) bytes, already checked).
// n % block_elems == 0 except for APR q4 (zero-padded tail) - checked by caller.
void quantize(int dtype, const float* x, size_t n, uint8_t* out, int threads);

}  // namespace aprqa
