#pragma once
// The second stage of the forward pass: the per-tile-pair partials summed in
// a fixed order (launch_plan.h: in one block, or in blocks of kFinalizeChunk
// rows and then one block over their sums) and the loss value formed. Device
// code only (launch.cu launches it, tests/cuda_emulator runs it as host code).
#include <cstdint>

#include "sigmoid/math.h"
#include "engine/cuda/cell_access.cuh"
#include "sigmoid/cuda/launch_plan.h"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int kFinalizeThreads = 256;

using FinalizeShared = double[kNumStats][kFinalizeThreads];

// The sums of rows[0 .. n) (kNumStats doubles each) in a fixed order: thread
// k adds rows k, k + 256, ..., then a tree over the threads. Thread 0 gets the totals.
__device__ __forceinline__ void block_sum(const double* rows, int64_t n, FinalizeShared& sh,
                                          double total[kNumStats]) {
  const int tid = threadIdx.x;
  double acc[kNumStats] = {0, 0, 0, 0};
  for (int64_t i = tid; i < n; i += kFinalizeThreads) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(&rows[i * kNumStats], kNumStats * sizeof(double), 1);
#pragma unroll
    for (int s = 0; s < kNumStats; ++s) acc[s] += rows[i * kNumStats + s];
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
#pragma unroll
  for (int s = 0; s < kNumStats; ++s) total[s] = sh[s][0];
}

// Level one: block c sums partial rows [c * kFinalizeChunk, (c + 1) * kFinalizeChunk) into chunk_sums[c].
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_chunks_kernel(const double* partials, int64_t items, double* chunk_sums) {
  __shared__ FinalizeShared sh;
  SYMFOCAL_SHARED_DECLARED(sh);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kFinalizeChunk;
  const int64_t n = items - first < kFinalizeChunk ? items - first : kFinalizeChunk;
  double total[kNumStats];
  block_sum(partials + first * kNumStats, n, sh, total);
  if (threadIdx.x == 0) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(&chunk_sums[blockIdx.x * kNumStats], kNumStats * sizeof(double), 1);
#pragma unroll
    for (int s = 0; s < kNumStats; ++s) chunk_sums[blockIdx.x * kNumStats + s] = total[s];
  }
}

// The last level, one block: stats and the loss value from n rows.
template <typename loss_t>
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(const double* rows, int64_t n, double* stats, loss_t* loss, Reduction reduction, double lambda) {
  __shared__ FinalizeShared sh;
  SYMFOCAL_SHARED_DECLARED(sh);
  double total[kNumStats];
  block_sum(rows, n, sh, total);
  if (threadIdx.x == 0) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(stats, kNumStats * sizeof(double), 1);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(loss, sizeof(loss_t), 1);
    for (int s = 0; s < kNumStats; ++s) stats[s] = total[s];
    *loss = static_cast<loss_t>(reduce_stats(total, reduction, lambda));
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
