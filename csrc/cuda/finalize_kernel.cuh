#pragma once
// The second stage of the forward pass: one block sums the per-tile-pair
// partials in a fixed order and forms the loss value. Device code only
// (launch.cu launches it, tests/cuda_emulator runs it as host code).
#include <cstdint>

#include "../focal_math.h"
#include "cell_access.cuh"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int kFinalizeThreads = 256;

template <typename loss_t>
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(const double* partials, int64_t items, double* stats, loss_t* loss, Reduction reduction,
                    double lambda) {
  __shared__ double sh[kNumStats][kFinalizeThreads];
  const int tid = threadIdx.x;
  double acc[kNumStats] = {0, 0, 0, 0};
  for (int64_t i = tid; i < items; i += kFinalizeThreads) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(&partials[i * kNumStats], kNumStats * sizeof(double), 1);
#pragma unroll
    for (int s = 0; s < kNumStats; ++s) acc[s] += partials[i * kNumStats + s];
  }
#pragma unroll
  for (int s = 0; s < kNumStats; ++s) sh[s][tid] = acc[s];
  __syncthreads();
  for (int stride = kFinalizeThreads / 2; stride > 0; stride >>= 1) {
    if (tid < stride)
#pragma unroll
      for (int s = 0; s < kNumStats; ++s) sh[s][tid] += sh[s][tid + stride];
    __syncthreads();
  }
  if (tid == 0) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(stats, kNumStats * sizeof(double), 1);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(loss, sizeof(loss_t), 1);
    double total[kNumStats];
    for (int s = 0; s < kNumStats; ++s) total[s] = stats[s] = sh[s][0];
    *loss = static_cast<loss_t>(reduce_stats(total, reduction, lambda));
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
