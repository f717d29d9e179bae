// The Python module symfocal._C: loading it registers the ops (ops.cpp and,
// in a CUDA build, cuda/ops_cuda.cpp); it also reports how it was built.
#include <pybind11/pybind11.h>

#include "cpu/kernels.h"

#ifndef SYMFOCAL_TORCH_VERSION
#define SYMFOCAL_TORCH_VERSION "unknown"
#endif
#ifndef SYMFOCAL_CUDA_VERSION
#define SYMFOCAL_CUDA_VERSION ""
#endif
#ifndef SYMFOCAL_CUDA_ARCHS
#define SYMFOCAL_CUDA_ARCHS ""
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "symfocal's compiled kernels";
  m.def("cpu_isa", &symfocal::cpu::isa_in_use, "instruction set the CPU kernels use");
  m.attr("torch_version") = SYMFOCAL_TORCH_VERSION;   // torch the extension was built against
  m.attr("cuda_version") = SYMFOCAL_CUDA_VERSION;     // "" for a CPU-only build
  m.attr("cuda_archs") = SYMFOCAL_CUDA_ARCHS;         // e.g. "8.0;9.0+PTX"
#ifdef SYMFOCAL_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
