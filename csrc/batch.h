// Registration of the batch entry points on the _core module: selected rows of many
// tensors (gather.cpp), the batched SWAPPED screen's sketch filter (sketch_filter.cpp) and
// length-prefixed string tables (strings.cpp).
#pragma once
#include <pybind11/pybind11.h>

namespace aprqa {
void register_gather(pybind11::module_& m);
void register_sketch_filter(pybind11::module_& m);
void register_strings(pybind11::module_& m);
}  // namespace aprqa
