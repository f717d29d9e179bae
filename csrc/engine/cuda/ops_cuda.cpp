// The CUDA implementation of the ops: device guard, current stream, launch
// checks around the launchers of launch.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "sigmoid/op_impl.h"
#include "softmax/op_impl.h"
#include "sigmoid/cuda/launch.h"
#include "softmax/cuda/launch.h"

namespace symfocal {
namespace {

// A GPU that the build has no code for fails at the launch; say which and how to
// rebuild. (symfocal/functional.py says it before the launch, outside torch.compile.)
void check_launch(cudaError_t err) {
  if (err == cudaErrorNoKernelImageForDevice) {
    int device = 0;
    cudaDeviceProp prop{};
    C10_CUDA_CHECK(cudaGetDevice(&device));
    C10_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    TORCH_CHECK(false, "symfocal has no CUDA kernel for this GPU: ", prop.name, " is sm_", prop.major,
                prop.minor, ", which is not among the architectures this build was compiled for (python -m "
                "symfocal.info lists them). Fix: rebuild for it: TORCH_CUDA_ARCH_LIST=\"", prop.major, ".",
                prop.minor, "\" FORCE_CUDA=1 pip install --no-build-isolation --force-reinstall --no-deps .");
  }
  C10_CUDA_CHECK(err);
}

struct CudaBackend {
  using Guard = c10::cuda::CUDAGuard;

  static int64_t work_items(const Problem& pb) { return num_work_items(pb); }

  static int64_t scratch_rows(const Problem& pb, int64_t items) { return cuda::finalize_scratch_rows(pb, items); }

  static void forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                      void* loss_scalar) {
    check_launch(cuda::launch_forward(pb, loss_map, partials, items, stats, loss_scalar,
                                        c10::cuda::getCurrentCUDAStream()));
  }

  static void backward(const Problem& pb, const GradSource& src, void* grad) {
    check_launch(cuda::launch_backward(pb, src, grad, num_work_items(pb), c10::cuda::getCurrentCUDAStream()));
  }
};

struct CudaSoftmaxBackend {
  using Guard = c10::cuda::CUDAGuard;

  static int64_t softmax_partial_rows(const SoftmaxProblem& pb) { return cuda::softmax_partial_rows(pb); }

  static void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, int64_t, double* rows,
                              void* loss_scalar) {
    check_launch(cuda::launch_softmax_forward(pb, loss_map, partials, rows, loss_scalar,
                                              c10::cuda::getCurrentCUDAStream()));
  }

  static void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad) {
    check_launch(cuda::launch_softmax_backward(pb, src, grad, c10::cuda::getCurrentCUDAStream()));
  }
};

std::tuple<at::Tensor, at::Tensor> softmax_forward_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                        const std::optional<at::Tensor>& alpha,
                                                        const std::optional<at::Tensor>& lengths,
                                                        const std::optional<at::Tensor>& mask,
                                                        const std::optional<at::Tensor>& weight,
                                                        const std::optional<at::Tensor>& normalizer,
                                                        SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  return softmax_forward_op<CudaSoftmaxBackend>(logits, target, alpha, lengths, mask, weight, normalizer,
                                                SYMFOCAL_SOFTMAX_OPTION_ARGS);
}

at::Tensor softmax_backward_cuda(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                                 const std::optional<at::Tensor>& alpha, const std::optional<at::Tensor>& lengths,
                                 const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight,
                                 const at::Tensor& stats,
                                 SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  return softmax_backward_op<CudaSoftmaxBackend>(grad, logits, target, alpha, lengths, mask, weight, stats,
                                                 SYMFOCAL_SOFTMAX_OPTION_ARGS);
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                const std::optional<at::Tensor>& lengths,
                                                const std::optional<at::Tensor>& mask,
                                                const std::optional<at::Tensor>& weight,
                                                const std::optional<at::Tensor>& normalizer,
                                                const std::optional<at::Tensor>& channel_alpha,
                                                const std::optional<at::Tensor>& channel_pos_weight,
                                                SYMFOCAL_OPTION_PARAMS) {
  return forward_op<CudaBackend>(logits, target, lengths, mask, weight, normalizer, channel_alpha, channel_pos_weight,
                                 SYMFOCAL_OPTION_ARGS);
}

at::Tensor backward_cuda(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                         const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                         const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& channel_alpha,
                         const std::optional<at::Tensor>& channel_pos_weight, const at::Tensor& stats,
                         SYMFOCAL_OPTION_PARAMS) {
  return backward_op<CudaBackend>(grad, logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats,
                                  SYMFOCAL_OPTION_ARGS);
}

}  // namespace
}  // namespace symfocal

TORCH_LIBRARY_IMPL(symfocal, CUDA, m) {
  m.impl("forward", &symfocal::forward_cuda);
  m.impl("backward", &symfocal::backward_cuda);
  m.impl("softmax_forward", &symfocal::softmax_forward_cuda);
  m.impl("softmax_backward", &symfocal::softmax_backward_cuda);
}
