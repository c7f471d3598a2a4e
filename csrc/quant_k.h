// K-quant quantizers (256-element super-blocks), byte-identical to ggml's reference
// quantize_row_q{2..6}_K_ref - what llama_model_quantize runs when no importance
// matrix is given. Each takes nb whole blocks; pointers are validated by the caller.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aprqa {

void quant_q2_K(const float* x, uint8_t* out, size_t nb);
void quant_q3_K(const float* x, uint8_t* out, size_t nb);
void quant_q4_K(const float* x, uint8_t* out, size_t nb);
void quant_q5_K(const float* x, uint8_t* out, size_t nb);
void quant_q6_K(const float* x, uint8_t* out, size_t nb);

}  // namespace aprqa
