// The softmax focal loss's kernels on a CUDA stream (softmax/cuda/kernel.cuh's plan).
#include "softmax/cuda/kernel.cuh"
#include "softmax/cuda/launch.h"

namespace symfocal {
namespace cuda {
namespace {

// A grid-stride loop over the units: at most this many blocks.
constexpr int64_t kMaxSoftmaxGrid = 65535;

unsigned grid_of(int64_t n) { return static_cast<unsigned>(n < kMaxSoftmaxGrid ? n : kMaxSoftmaxGrid); }

// softmax/cuda/kernel.cuh's launcher on a stream; keeps the first launch error.
struct StreamLauncher {
  cudaStream_t stream;
  cudaError_t error = cudaSuccess;

  void pairs(detail::SoftmaxPairsKernel kernel, const SoftmaxProblem& pb, int64_t units, const SoftmaxGradSource& src,
             void* out, double* partials) {
    if (error != cudaSuccess) return;
    kernel<<<grid_of(units), detail::kSoftmaxThreads, 0, stream>>>(pb, units, src, out, partials);
    error = cudaGetLastError();
  }

  void sample_sums(const double* partials, int64_t per_sample, int64_t batch, double* rows) {
    if (error != cudaSuccess) return;
    detail::softmax_sample_sums_kernel<<<grid_of(batch), detail::kSoftmaxThreads, 0, stream>>>(partials, per_sample,
                                                                                                batch, rows);
    error = cudaGetLastError();
  }

  template <typename loss_t>
  void reduce(double* rows, int64_t batch, loss_t* loss, Reduction reduction, Normalize normalize,
              const double* normalizer) {
    if (error != cudaSuccess) return;
    detail::softmax_reduce_kernel<loss_t><<<1, 32, 0, stream>>>(rows, batch, loss, reduction, normalize, normalizer);
    error = cudaGetLastError();
  }
};

}  // namespace

int64_t softmax_partial_rows(const SoftmaxProblem& pb) { return detail::softmax_units(pb); }

cudaError_t launch_softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, double* rows,
                                   void* loss_scalar, cudaStream_t stream) {
  StreamLauncher launch{stream};
  detail::plan_softmax_forward(launch, pb, loss_map, partials, rows, loss_scalar);
  return launch.error;
}

cudaError_t launch_softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad,
                                    cudaStream_t stream) {
  StreamLauncher launch{stream};
  detail::plan_softmax_backward(launch, pb, src, grad);
  return launch.error;
}

}  // namespace cuda
}  // namespace symfocal
