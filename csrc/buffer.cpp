#include "buffer.h"

#include <stdexcept>

namespace aprqa {

static size_t contiguous_nbytes(const py::buffer_info& info, const std::string& what) {
    // Only C-contiguous buffers: a strided view would make ptr+len lie about extent.
    py::ssize_t expected = info.itemsize;
    for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
        if (info.shape[d] > 1 && info.strides[d] != expected)
            throw std::invalid_argument(what + ": buffer is not C-contiguous");
        expected *= info.shape[d];
    }
    return static_cast<size_t>(info.size) * static_cast<size_t>(info.itemsize);
}

ReadBuffer::ReadBuffer(const py::buffer& obj, const char* what)
    : info_(obj.request(false)), what_(what) {
    nbytes_ = contiguous_nbytes(info_, what_);
}

ByteSpan ReadBuffer::span_for(int dtype, uint64_t n) const {
    size_t need = payload_bytes(dtype, n);
    if (need > nbytes_)
        throw std::invalid_argument(what_ + ": " + std::to_string(n) + " elements of " +
                                    dtype_or_throw(dtype).name + " need " + std::to_string(need) +
                                    " bytes, buffer holds " + std::to_string(nbytes_));
    return {static_cast<const uint8_t*>(info_.ptr), need};
}

WriteBuffer::WriteBuffer(const py::buffer& obj, const char* what)
    : info_(obj.request(true)), what_(what) {
    if (info_.readonly) throw std::invalid_argument(what_ + ": output buffer is read-only");
    nbytes_ = contiguous_nbytes(info_, what_);
}

MutSpan WriteBuffer::span_for_items(uint64_t count, size_t item_bytes) const {
    uint64_t need = 0;
    if (__builtin_mul_overflow(count, (uint64_t)item_bytes, &need) || need > nbytes_)
        throw std::invalid_argument(what_ + ": output needs " + std::to_string(count) + " x " +
                                    std::to_string(item_bytes) + " bytes, buffer holds " +
                                    std::to_string(nbytes_));
    return {static_cast<uint8_t*>(info_.ptr), static_cast<size_t>(need)};
}

}  // namespace aprqa
