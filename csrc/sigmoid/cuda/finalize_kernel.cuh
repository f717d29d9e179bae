#pragma once
// The second stage of the forward pass: the per-tile-pair partials summed in
// a fixed order (launch_plan.h: in one block, or in blocks of kFinalizeChunk
// rows and then one block over their sums; with normalize sample, each
// sample's in one block and then the samples in order) and the loss value
// formed. Device
// code only (launch.cu launches it, tests/cuda_emulator runs it as host code).
#include <cstdint>

#include "sigmoid/math.h"
#include "engine/cuda/cell_access.cuh"
#include "sigmoid/cuda/launch_plan.h"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int kFinalizeThreads = 256;

using FinalizeShared = double[kNumPartials][kFinalizeThreads];

// The sums of rows[0 .. n) (kNumPartials doubles each) in a fixed order: thread
// k adds rows k, k + 256, ..., then a tree over the threads. Thread 0 gets the totals.
__device__ __forceinline__ void block_sum(const double* rows, int64_t n, FinalizeShared& sh,
                                          double total[kNumPartials]) {
  const int tid = threadIdx.x;
  double acc[kNumPartials] = {};
  for (int64_t i = tid; i < n; i += kFinalizeThreads) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(&rows[i * kNumPartials], kNumPartials * sizeof(double), 1);
#pragma unroll
    for (int s = 0; s < kNumPartials; ++s) acc[s] += rows[i * kNumPartials + s];
  }
#pragma unroll
  for (int s = 0; s < kNumPartials; ++s) sh[s][tid] = acc[s];
  __syncthreads();
  for (int stride = kFinalizeThreads / 2; stride > 0; stride >>= 1) {
    if (tid < stride)
#pragma unroll
      for (int s = 0; s < kNumPartials; ++s) sh[s][tid] += sh[s][tid + stride];
    __syncthreads();
  }
#pragma unroll
  for (int s = 0; s < kNumPartials; ++s) total[s] = sh[s][0];
}

// Level one: block c sums partial rows [c * kFinalizeChunk, (c + 1) * kFinalizeChunk) into chunk_sums[c].
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_chunks_kernel(const double* partials, int64_t items, double* chunk_sums) {
  __shared__ FinalizeShared sh;
  SYMFOCAL_SHARED_DECLARED(sh);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kFinalizeChunk;
  const int64_t n = items - first < kFinalizeChunk ? items - first : kFinalizeChunk;
  double total[kNumPartials];
  block_sum(partials + first * kNumPartials, n, sh, total);
  if (threadIdx.x == 0) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(&chunk_sums[blockIdx.x * kNumPartials], kNumPartials * sizeof(double), 1);
#pragma unroll
    for (int s = 0; s < kNumPartials; ++s) chunk_sums[blockIdx.x * kNumPartials + s] = total[s];
  }
}

// Normalize sample, level one: each sample's partials (per_sample consecutive
// rows) into rows[b]; block b takes samples b, b + gridDim.x, ...
__global__ void __launch_bounds__(kFinalizeThreads)
    sample_sums_kernel(const double* partials, int64_t per_sample, int64_t batch, double* rows) {
  __shared__ FinalizeShared sh;
  SYMFOCAL_SHARED_DECLARED(sh);
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double total[kNumPartials];
    block_sum(partials + b * per_sample * kNumPartials, per_sample, sh, total);
    if (threadIdx.x == 0) {
      SYMFOCAL_CHECK_GLOBAL_ACCESS(&rows[b * kNumPartials], kNumPartials * sizeof(double), 1);
#pragma unroll
      for (int s = 0; s < kNumPartials; ++s) rows[b * kNumPartials + s] = total[s];
    }
    // Every thread has read sh[.][0] (block_sum's totals) before thread 0 writes it again for the next
    // sample: without this barrier a write-after-read race, harmless (only thread 0 uses its totals) but a race.
    __syncthreads();
  }
}

// The last level, one block: stats and the loss value from n rows (normalize
// cells or positives), or from the batch's sample rows (normalize sample, one
// thread, in sample order).
template <typename loss_t>
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(const double* rows, int64_t n, double* stats, loss_t* loss, Params params,
                    const double* normalizer) {
  __shared__ FinalizeShared sh;
  SYMFOCAL_SHARED_DECLARED(sh);
  if (params.normalize == Normalize::kSample) {
    if (threadIdx.x == 0) {
      if (n > 0) SYMFOCAL_CHECK_GLOBAL_ACCESS(rows, n * kNumPartials * sizeof(double), 1);
      SYMFOCAL_CHECK_GLOBAL_ACCESS(stats, (kNumStats + n) * sizeof(double), 1);
      SYMFOCAL_CHECK_GLOBAL_ACCESS(loss, sizeof(loss_t), 1);
      *loss = static_cast<loss_t>(reduce_sample_rows(rows, n, stats, params));
    }
    return;
  }
  double total[kNumStats];
  block_sum(rows, n, sh, total);
  if (threadIdx.x == 0) {
    SYMFOCAL_CHECK_GLOBAL_ACCESS(stats, kNumStats * sizeof(double), 1);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(loss, sizeof(loss_t), 1);
    if (normalizer != nullptr) SYMFOCAL_CHECK_GLOBAL_ACCESS(normalizer, sizeof(double), 1);
    *loss = static_cast<loss_t>(reduce_stats(total, params, normalizer));
    for (int s = 0; s < kNumStats; ++s) stats[s] = total[s];
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
