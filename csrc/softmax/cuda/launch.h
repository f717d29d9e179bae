// Launchers of the softmax focal loss's CUDA kernels (softmax/cuda/kernel.cuh):
// plain C++ and CUDA runtime types only, as launch.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "softmax/types.h"

namespace symfocal {
namespace cuda {

// Rows of kNumSoftmaxPartials doubles the forward's partials need.
int64_t softmax_partial_rows(const SoftmaxProblem& pb);

// Per-unit partials, their per-sample sums into rows ([batch, kNumSampleStats],
// the scales included) and the loss scalar (float32; float64 for float64
// logits); the loss map when loss_map is not null. All on the device.
cudaError_t launch_softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, double* rows,
                                   void* loss_scalar, cudaStream_t stream);

// grad_logits ([batch, L, L, C], contiguous) in one pass.
cudaError_t launch_softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad,
                                    cudaStream_t stream);

}  // namespace cuda
}  // namespace symfocal
