// The Python module symfocal._C: loading it registers the ops (ops.cpp and,
// in a CUDA build, cuda/ops_cuda.cpp). What it was built for (torch, CUDA,
// architectures) lies beside it in _build_info.json, readable without loading it.
#include <pybind11/pybind11.h>

#include "cpu/kernels.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "symfocal's compiled kernels";
  m.def("cpu_isa", &symfocal::cpu::isa_in_use, "instruction set the CPU kernels use");
#ifdef SYMFOCAL_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
