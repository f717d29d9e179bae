// The Python module symfocal._C: loading it registers the ops (ops.cpp and,
// in a CUDA build, engine/cuda/ops_cuda.cpp). What it was built for (torch, CUDA,
// architectures) lies beside it in _build_info.json, readable without loading it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cpu/kernels.h"
#ifdef SYMFOCAL_WITH_CUDA
#include "sigmoid/cuda/variants.h"
#endif

namespace py = pybind11;

#ifdef SYMFOCAL_WITH_CUDA
namespace {

using symfocal::cuda::Variant;

// (name, what it changes, compiled into this build) of every variant.
std::vector<std::tuple<std::string, std::string, bool>> cuda_variants() {
  std::vector<std::tuple<std::string, std::string, bool>> out;
  for (int i = 0; i < static_cast<int>(Variant::kCount); ++i) {
    const auto v = static_cast<Variant>(i);
    out.emplace_back(symfocal::cuda::variant_info(v).name, symfocal::cuda::variant_info(v).what,
                     symfocal::cuda::variant_compiled(v));
  }
  return out;
}

void set_cuda_variant(const std::string& name) {
  const Variant v = symfocal::cuda::variant_named(name.c_str());
  if (v == Variant::kCount) throw std::invalid_argument("symfocal: no CUDA kernel variant named '" + name + "'");
  if (!symfocal::cuda::set_variant(v))
    throw std::invalid_argument("symfocal: CUDA kernel variant '" + name +
                                "' is not in this build (build with SYMFOCAL_CUDA_VARIANTS=1, as make gpu-check does)");
}

}  // namespace
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "symfocal's compiled kernels";
  m.def("cpu_isa", &symfocal::cpu::isa_in_use, "instruction set the CPU kernels use");
#ifdef SYMFOCAL_WITH_CUDA
  m.attr("with_cuda") = true;
  m.def("cuda_variants", &cuda_variants, "(name, what it changes, compiled) of each CUDA kernel variant");
  m.def("set_cuda_variant", &set_cuda_variant, "the CUDA kernel variant later launches use (benchmarks only)");
  m.def("cuda_variant", [] { return std::string(symfocal::cuda::variant_info(symfocal::cuda::current_variant()).name); });
#else
  m.attr("with_cuda") = false;
#endif
}
