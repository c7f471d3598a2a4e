// IQ-type dequantizers (scalar `_ref` in dequant_iq.cpp, AVX2+F16C `_avx2` in
// dequant_iq_avx2.cpp), same signature and contract as the kernels in dequant.h.
#pragma once
#include <cstddef>
#include <cstdint>

#include "half.h"

namespace aprqa {

void dequant_iq2_xxs_ref(const uint8_t*, float*, size_t);
void dequant_iq2_xs_ref(const uint8_t*, float*, size_t);
void dequant_iq2_s_ref(const uint8_t*, float*, size_t);
void dequant_iq3_xxs_ref(const uint8_t*, float*, size_t);
void dequant_iq3_s_ref(const uint8_t*, float*, size_t);
void dequant_iq1_s_ref(const uint8_t*, float*, size_t);
void dequant_iq1_m_ref(const uint8_t*, float*, size_t);
uint16_t iq1m_d_bits(const uint8_t* scales);
// IQ1's grid offset: -0.125f when bit 0 of `neg` is set, else +0.125f (built from bits: no branch
// on data, whose sign bits are random).
inline float iq1_delta(unsigned neg) { return bits_f32(0x3E000000u | ((neg & 1u) << 31)); }  // 0x3E000000: 0.125f

#if defined(__x86_64__) || defined(_M_X64)
void dequant_iq2_xxs_avx2(const uint8_t*, float*, size_t);
void dequant_iq2_xs_avx2(const uint8_t*, float*, size_t);
void dequant_iq2_s_avx2(const uint8_t*, float*, size_t);
void dequant_iq3_xxs_avx2(const uint8_t*, float*, size_t);
void dequant_iq3_s_avx2(const uint8_t*, float*, size_t);
void dequant_iq1_s_avx2(const uint8_t*, float*, size_t);
void dequant_iq1_m_avx2(const uint8_t*, float*, size_t);
#endif

}  // namespace aprqa
