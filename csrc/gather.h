// Registration of the batched row decoder (gather.cpp) on the _core module.
#pragma once
#include <pybind11/pybind11.h>

namespace aprqa {
void register_gather(pybind11::module_& m);
}  // namespace aprqa
