// Python bindings of the native core. Every kernel binding validates its
// buffers through ReadBuffer/WriteBuffer and releases the GIL while it runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <tuple>
#include <vector>

#include "buffer.h"
#include "dtypes.h"

namespace py = pybind11;
using namespace aprqa;

PYBIND11_MODULE(_core, m) {
    m.doc() = "aprqa native core: bounds-checked dequantization, quantization and diff kernels";

    m.def(
        "dtype_table",
        [] {
            std::vector<std::tuple<int, std::string, uint32_t, uint32_t>> out;
            for (const auto& t : kDTypes) out.emplace_back(t.id, t.name, t.block_elems, t.block_bytes);
            return out;
        },
        "List of (id, name, block_elems, block_bytes) the kernels were compiled with.");

    m.def(
        "payload_bytes", [](int dtype, uint64_t n) { return payload_bytes(dtype, n); },
        py::arg("dtype"), py::arg("n"),
        "Exact payload size of n elements of dtype; ValueError on partial blocks or overflow.");

    m.def(
        "checked_span_len",
        [](const py::buffer& buf, int dtype, uint64_t n) {
            ReadBuffer rb(buf, "buffer");
            return rb.span_for(dtype, n).size;
        },
        py::arg("buf"), py::arg("dtype"), py::arg("n"),
        "Validate that buf holds n elements of dtype; returns the bytes the kernel would read.");
}
