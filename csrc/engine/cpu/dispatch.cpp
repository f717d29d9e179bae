// Run-time choice of the CPU kernels' instruction set. It follows ATen's own
// choice (at::get_cpu_capability), so ATEN_CPU_CAPABILITY=avx2 or =default
// selects the narrower kernels as it does for PyTorch's, e.g. to test them.
// setup.py defines SYMFOCAL_CPU_AVX2 / SYMFOCAL_CPU_AVX512 for the instruction
// sets it built (SYMFOCAL_CPU_ISAS=native builds only the processor's widest);
// where ATen picks one that was not built, the portable kernels run.
#include <ATen/Version.h>

#include <string>

#include "engine/cpu/kernels.h"

namespace symfocal {
namespace cpu {

namespace {
enum class Isa { kDefault, kAvx2, kAvx512 };

Isa read_capability() {
  const std::string cap = at::get_cpu_capability();
#if defined(SYMFOCAL_CPU_AVX512)
  if (cap == "AVX512") return Isa::kAvx512;
#endif
#if defined(SYMFOCAL_CPU_AVX2)
  if (cap == "AVX2") return Isa::kAvx2;
#endif
  (void)cap;
  return Isa::kDefault;
}
Isa pick() {
  static const Isa isa = read_capability();  // ATen fixes its choice at start too
  return isa;
}
}  // namespace

void forward(const Problem& pb, void* loss_map, double* partials, void* grad_unit, double grad_scale) {
  switch (pick()) {
#if defined(SYMFOCAL_CPU_AVX512)
    case Isa::kAvx512: return AVX512::forward(pb, loss_map, partials, grad_unit, grad_scale);
#endif
#if defined(SYMFOCAL_CPU_AVX2)
    case Isa::kAvx2: return AVX2::forward(pb, loss_map, partials, grad_unit, grad_scale);
#endif
    default: return DEFAULT::forward(pb, loss_map, partials, grad_unit, grad_scale);
  }
}

void backward(const Problem& pb, const GradSource& src, void* grad) {
  switch (pick()) {
#if defined(SYMFOCAL_CPU_AVX512)
    case Isa::kAvx512: return AVX512::backward(pb, src, grad);
#endif
#if defined(SYMFOCAL_CPU_AVX2)
    case Isa::kAvx2: return AVX2::backward(pb, src, grad);
#endif
    default: return DEFAULT::backward(pb, src, grad);
  }
}

void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, void* grad_unit,
                     const double* sample_grad_scale) {
  switch (pick()) {
#if defined(SYMFOCAL_CPU_AVX512)
    case Isa::kAvx512: return AVX512::softmax_forward(pb, loss_map, partials, grad_unit, sample_grad_scale);
#endif
#if defined(SYMFOCAL_CPU_AVX2)
    case Isa::kAvx2: return AVX2::softmax_forward(pb, loss_map, partials, grad_unit, sample_grad_scale);
#endif
    default: return DEFAULT::softmax_forward(pb, loss_map, partials, grad_unit, sample_grad_scale);
  }
}

void softmax_sample_cells(const SoftmaxProblem& pb, double* cells_per_sample) {
  switch (pick()) {
#if defined(SYMFOCAL_CPU_AVX512)
    case Isa::kAvx512: return AVX512::softmax_sample_cells(pb, cells_per_sample);
#endif
#if defined(SYMFOCAL_CPU_AVX2)
    case Isa::kAvx2: return AVX2::softmax_sample_cells(pb, cells_per_sample);
#endif
    default: return DEFAULT::softmax_sample_cells(pb, cells_per_sample);
  }
}

void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad) {
  switch (pick()) {
#if defined(SYMFOCAL_CPU_AVX512)
    case Isa::kAvx512: return AVX512::softmax_backward(pb, src, grad);
#endif
#if defined(SYMFOCAL_CPU_AVX2)
    case Isa::kAvx2: return AVX2::softmax_backward(pb, src, grad);
#endif
    default: return DEFAULT::softmax_backward(pb, src, grad);
  }
}

const char* isa_in_use() {
  switch (pick()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "default";
  }
}

}  // namespace cpu
}  // namespace symfocal
