// Bounds-checked access to Python buffers (numpy views into a memory map, bytes,
// bytearray). Every kernel takes ByteSpan / MutSpan made here, never raw pointers
// from Python, so the length check happens in exactly one place.
#pragma once
#include <pybind11/pybind11.h>
#include <cstddef>
#include <cstdint>
#include <string>

#include "dtypes.h"

namespace aprqa {
namespace py = pybind11;

struct ByteSpan {
    const uint8_t* data;
    size_t size;
};
struct MutSpan {
    uint8_t* data;
    size_t size;
};

// Holds the Py_buffer alive for as long as the span is used.
class ReadBuffer {
  public:
    ReadBuffer(const py::buffer& obj, const char* what);
    ByteSpan span() const { return {static_cast<const uint8_t*>(info_.ptr), nbytes_}; }
    // Checks that the buffer holds at least payload_bytes(dtype, n) bytes.
    ByteSpan span_for(int dtype, uint64_t n) const;

  private:
    py::buffer_info info_;
    size_t nbytes_;
    std::string what_;
};

class WriteBuffer {
  public:
    WriteBuffer(const py::buffer& obj, const char* what);
    MutSpan span() const { return {static_cast<uint8_t*>(info_.ptr), nbytes_}; }
    // Checks that the buffer has room for `count` items of `item_bytes` each.
    MutSpan span_for_items(uint64_t count, size_t item_bytes) const;

  private:
    py::buffer_info info_;
    size_t nbytes_;
    std::string what_;
};

}  // namespace aprqa
