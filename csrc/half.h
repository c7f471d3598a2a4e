// Exact scalar conversions between f32 and the 16-bit float formats.
// f16 -> f32 is exact and keeps NaN payloads (like numpy's astype); f32 -> f16
// rounds to nearest even, overflows to inf, and keeps NaNs NaN (numpy semantics).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace aprqa {

inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float bits_f32(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint64_t f64_bits(double f) {
    uint64_t u;
    std::memcpy(&u, &f, 8);
    return u;
}

inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: mant * 2^-24, exact in f32
        float v = (float)mant * 5.9604644775390625e-08f;
        return bits_f32(sign | f32_bits(v));
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t f32_to_f16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        uint16_t r = (uint16_t)(0x7c00u + ((ax & 0x7fffffu) >> 13));
        if (r == 0x7c00u) ++r;  // keep a NaN a NaN
        return sign | r;
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
    if (ax < 0x38800000u) {                          // below 2^-14: subnormal half (or zero)
        float v = bits_f32(ax) * 16777216.0f;         // exact: scale by 2^24
        return sign | (uint16_t)std::nearbyint(v);    // 1024 lands exactly on the min normal
    }
    uint32_t r = ax - (112u << 23);
    r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
    return sign | (uint16_t)r;
}

inline float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

// Round-to-nearest-even f32 -> bf16 (what torch's .to(bfloat16) does); a NaN stays a quiet NaN.
inline uint16_t f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace aprqa
