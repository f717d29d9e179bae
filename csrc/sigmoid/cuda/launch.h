// Launchers of the CUDA kernels. Plain C++ and CUDA runtime types only, so
// that kernels.cu compiles without any torch header (fast, and every warning
// in it is ours); ops_cuda.cpp calls these from the torch side.
#pragma once

#include <cuda_runtime_api.h>

#include "engine/types.h"
#include "sigmoid/cuda/launch_plan.h"

namespace symfocal {
namespace cuda {

// Per-tile-pair partial sums, then their fixed-order sum into stats and the
// loss scalar (float32, float64 for float64 logits); the loss map when
// loss_map is not null. Everything stays on the device. `partials` has
// items + finalize_scratch_rows(items) rows (launch_plan.h).
cudaError_t launch_forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                           void* loss_scalar, cudaStream_t stream);

// grad_logits in one pass; reads the incoming gradient and the statistics
// from device memory (no host sync).
cudaError_t launch_backward(const Problem& pb, const GradSource& src, void* grad, int64_t items,
                            cudaStream_t stream);

}  // namespace cuda
}  // namespace symfocal
