// The 16 non-linear int8 levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl), shared by the
// dequantizers and the vec_dot kernels.
#pragma once
#include <cstdint>

namespace aprqa {
inline constexpr int8_t kIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
}  // namespace aprqa
