// The CUDA implementation of the ops: device guard, current stream, launch
// checks around the launchers of kernels.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../op_impl.h"
#include "launch.h"

namespace symfocal {
namespace {

struct CudaBackend {
  using Guard = c10::cuda::CUDAGuard;

  static void forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                      void* loss_scalar) {
    C10_CUDA_CHECK(cuda::launch_forward(pb, loss_map, partials, items, stats, loss_scalar,
                                        c10::cuda::getCurrentCUDAStream()));
  }

  static void backward(const Problem& pb, const GradSource& src, void* grad) {
    C10_CUDA_CHECK(cuda::launch_backward(pb, src, grad, num_work_items(pb), c10::cuda::getCurrentCUDAStream()));
  }
};

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                const std::optional<at::Tensor>& lengths,
                                                const std::optional<at::Tensor>& mask, SYMFOCAL_OPTION_PARAMS) {
  return forward_op<CudaBackend>(logits, target, lengths, mask, SYMFOCAL_OPTION_ARGS);
}

at::Tensor backward_cuda(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                         const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                         const at::Tensor& stats, SYMFOCAL_OPTION_PARAMS) {
  return backward_op<CudaBackend>(grad, logits, target, lengths, mask, stats, SYMFOCAL_OPTION_ARGS);
}

}  // namespace
}  // namespace symfocal

TORCH_LIBRARY_IMPL(symfocal, CUDA, m) {
  m.impl("forward", &symfocal::forward_cuda);
  m.impl("backward", &symfocal::backward_cuda);
}
