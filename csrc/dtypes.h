// One table of tensor element types, shared by every kernel.
// Ids 0..63 are ggml_type ids; 128/129 are APR's own q4/q8; 200+ are
// SafeTensors-only types with no GGML id. docs/quantizations.md ("Adding a quant type")
// says what a new type needs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace aprqa {

struct DTypeTraits {
    int id;
    const char* name;
    uint32_t block_elems;   // elements per block (1 for plain types)
    uint32_t block_bytes;   // bytes per block
};

// The one list, sorted by id, one row per type as ggml's type_traits:
//   X(symbol, id, name, elements per block, bytes per block,
//     scalar dequantizer, AVX2 dequantizer, quantizer)
// It generates the DTypeId enum (kF32, kQ4_K, kAprQ8, ...) and the kDTypes table here; dequant.cpp
// and quant.cpp expand the kernel columns into their dispatch (`nokernel`: none). Expansions that
// read only the leading columns end in `...`, so a new column is one more argument per row.
// Quantizers are tensor-level (QuantFn in quant.h): `by_blocks<f>` runs a block kernel over whole
// blocks in parallel. apr_q8's dequantizer `tensor_scale` is dequant_range's own loop (one
// tensor-wide scale in a 4-byte f32 header, which payload_bytes adds).
// Bytes for Q8_1 follow the C struct (36), not gguf-py's stale 40. The Python rows
// (aprqa/quant/dtypes.py) are checked against dtype_table() in tests/quant/test_type_rows.py.
#define APRQA_DTYPES(X) \
    X(F32, 0, "f32", 1, 4, dequant_f32_ref, nokernel, by_blocks<cast_f32>) \
    X(F16, 1, "f16", 1, 2, dequant_f16_ref, dequant_f16_avx2, by_blocks<cast_f16>) \
    X(Q4_0, 2, "q4_0", 32, 18, dequant_q4_0_ref, dequant_q4_0_avx2, by_blocks<quant_q4_0>) \
    X(Q4_1, 3, "q4_1", 32, 20, dequant_q4_1_ref, dequant_q4_1_avx2, by_blocks<quant_q4_1>) \
    X(Q5_0, 6, "q5_0", 32, 22, dequant_q5_0_ref, dequant_q5_0_avx2, by_blocks<quant_q5_0>) \
    X(Q5_1, 7, "q5_1", 32, 24, dequant_q5_1_ref, dequant_q5_1_avx2, by_blocks<quant_q5_1>) \
    X(Q8_0, 8, "q8_0", 32, 34, dequant_q8_0_ref, dequant_q8_0_avx2, by_blocks<quant_q8_0>) \
    X(Q8_1, 9, "q8_1", 32, 36, dequant_q8_1_ref, nokernel, nokernel) \
    X(Q2_K, 10, "q2_k", 256, 84, dequant_q2_K_ref, dequant_q2_K_avx2, by_blocks<quant_q2_K>) \
    X(Q3_K, 11, "q3_k", 256, 110, dequant_q3_K_ref, dequant_q3_K_avx2, by_blocks<quant_q3_K>) \
    X(Q4_K, 12, "q4_k", 256, 144, dequant_q4_K_ref, dequant_q4_K_avx2, by_blocks<quant_q4_K>) \
    X(Q5_K, 13, "q5_k", 256, 176, dequant_q5_K_ref, dequant_q5_K_avx2, by_blocks<quant_q5_K>) \
    X(Q6_K, 14, "q6_k", 256, 210, dequant_q6_K_ref, dequant_q6_K_avx2, by_blocks<quant_q6_K>) \
    X(Q8_K, 15, "q8_k", 256, 292, dequant_q8_K_ref, nokernel, nokernel) \
    X(IQ2_XXS, 16, "iq2_xxs", 256, 66, dequant_iq2_xxs_ref, dequant_iq2_xxs_avx2, nokernel) \
    X(IQ2_XS, 17, "iq2_xs", 256, 74, dequant_iq2_xs_ref, dequant_iq2_xs_avx2, nokernel) \
    X(IQ3_XXS, 18, "iq3_xxs", 256, 98, dequant_iq3_xxs_ref, dequant_iq3_xxs_avx2, nokernel) \
    X(IQ1_S, 19, "iq1_s", 256, 50, dequant_iq1_s_ref, dequant_iq1_s_avx2, nokernel) \
    X(IQ4_NL, 20, "iq4_nl", 32, 18, dequant_iq4_nl_ref, dequant_iq4_nl_avx2, nokernel) \
    X(IQ3_S, 21, "iq3_s", 256, 110, dequant_iq3_s_ref, dequant_iq3_s_avx2, nokernel) \
    X(IQ2_S, 22, "iq2_s", 256, 82, dequant_iq2_s_ref, dequant_iq2_s_avx2, nokernel) \
    X(IQ4_XS, 23, "iq4_xs", 256, 136, dequant_iq4_xs_ref, dequant_iq4_xs_avx2, nokernel) \
    X(I8, 24, "i8", 1, 1, dequant_int_ref<int8_t>, nokernel, nokernel) \
    X(I16, 25, "i16", 1, 2, dequant_int_ref<int16_t>, nokernel, nokernel) \
    X(I32, 26, "i32", 1, 4, dequant_int_ref<int32_t>, nokernel, nokernel) \
    X(I64, 27, "i64", 1, 8, dequant_int_ref<int64_t>, nokernel, nokernel) \
    X(F64, 28, "f64", 1, 8, dequant_f64_ref, nokernel, nokernel) \
    X(IQ1_M, 29, "iq1_m", 256, 56, dequant_iq1_m_ref, dequant_iq1_m_avx2, nokernel) \
    X(BF16, 30, "bf16", 1, 2, dequant_bf16_ref, nokernel, by_blocks<cast_bf16>) \
    X(TQ1_0, 34, "tq1_0", 256, 54, dequant_tq1_0_ref, nokernel, nokernel) \
    X(TQ2_0, 35, "tq2_0", 256, 66, dequant_tq2_0_ref, nokernel, nokernel) \
    X(MXFP4, 39, "mxfp4", 32, 17, dequant_mxfp4_ref, nokernel, nokernel) \
    X(NVFP4, 40, "nvfp4", 64, 36, dequant_nvfp4_ref, nokernel, nokernel) \
    X(Q1_0, 41, "q1_0", 128, 18, dequant_q1_0_ref, nokernel, nokernel) \
    X(Q2_0, 42, "q2_0", 64, 18, dequant_q2_0_ref, nokernel, nokernel) \
    X(AprQ4, 128, "apr_q4", 32, 18, dequant_apr_q4_ref, nokernel, quant_apr_q4_tensor) \
    X(AprQ8, 129, "apr_q8", 1, 1, tensor_scale, nokernel, quant_apr_q8_tensor) \
    X(U8, 200, "u8", 1, 1, dequant_int_ref<uint8_t>, nokernel, nokernel) \
    X(U16, 201, "u16", 1, 2, dequant_int_ref<uint16_t>, nokernel, nokernel) \
    X(U32, 202, "u32", 1, 4, dequant_int_ref<uint32_t>, nokernel, nokernel) \
    X(U64, 203, "u64", 1, 8, dequant_int_ref<uint64_t>, nokernel, nokernel) \
    X(Bool, 204, "bool", 1, 1, dequant_bool_ref, nokernel, nokernel) \
    X(F8_E4M3, 205, "f8_e4m3", 1, 1, dequant_f8_e4m3_ref, nokernel, nokernel) \
    X(F8_E5M2, 206, "f8_e5m2", 1, 1, dequant_f8_e5m2_ref, nokernel, nokernel)

enum DTypeId : int {
#define APRQA_X(sym, id, ...) k##sym = id,
    APRQA_DTYPES(APRQA_X)
#undef APRQA_X
};

inline constexpr DTypeTraits kDTypes[] = {
#define APRQA_X(sym, id, name, block_elems, block_bytes, ...) {k##sym, name, block_elems, block_bytes},
    APRQA_DTYPES(APRQA_X)
#undef APRQA_X
};

// The empty kernel column of a row.
inline constexpr std::nullptr_t nokernel = nullptr;

inline const DTypeTraits* find_dtype(int id) {
    for (const auto& t : kDTypes)
        if (t.id == id) return &t;
    return nullptr;
}

// An unknown or unsupported dtype: registered in bindings.cpp as aprqa._core.DTypeError
// (a ValueError), so Python maps it by type, never by message text.
struct dtype_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

inline const DTypeTraits& dtype_or_throw(int id) {
    const DTypeTraits* t = find_dtype(id);
    if (!t) throw dtype_error("unknown dtype id " + std::to_string(id));
    return *t;
}

// Exact payload size in bytes of n elements of dtype `id`, overflow-checked.
// Throws std::invalid_argument when n is not a whole number of blocks.
inline size_t payload_bytes(int id, uint64_t n) {
    const DTypeTraits& t = dtype_or_throw(id);
    if (n % t.block_elems != 0)
        throw std::invalid_argument(std::string(t.name) + ": " + std::to_string(n) +
                                    " elements is not a multiple of block size " +
                                    std::to_string(t.block_elems));
    uint64_t blocks = n / t.block_elems, bytes = 0;
    if (__builtin_mul_overflow(blocks, (uint64_t)t.block_bytes, &bytes))
        throw std::invalid_argument(std::string(t.name) + ": byte size of " + std::to_string(n) +
                                    " elements overflows 64 bits");
    if (id == kAprQ8) {
        if (__builtin_add_overflow(bytes, (uint64_t)4, &bytes))
            throw std::invalid_argument("apr_q8: byte size overflows 64 bits");
    }
    if (bytes > (uint64_t)std::numeric_limits<size_t>::max())
        throw std::invalid_argument("byte size does not fit in size_t");
    return (size_t)bytes;
}

}  // namespace aprqa
