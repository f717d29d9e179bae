// Entry points of the CUDA kernels (launch.h): the tile-pair passes, compiled
// in tile_pairs_*.cu, and the fixed-order final sum of the forward pass.
#include "tile_pair_kernel.cuh"

extern SYMFOCAL_TILE_PAIRS(kForward, float);
extern SYMFOCAL_TILE_PAIRS(kForward, double);
extern SYMFOCAL_TILE_PAIRS(kBackward, float);
extern SYMFOCAL_TILE_PAIRS(kBackward, double);

namespace symfocal {
namespace cuda {
namespace {

using detail::launch_tile_pairs;
using detail::Pass;
constexpr int kFinalizeThreads = 256;

// Sums the partials in a fixed order and forms the loss value.
template <typename loss_t>
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(const double* partials, int64_t items, double* stats, loss_t* loss, Reduction reduction,
                    double lambda) {
  __shared__ double sh[kNumStats][kFinalizeThreads];
  const int tid = threadIdx.x;
  double acc[kNumStats] = {0, 0, 0, 0};
  for (int64_t i = tid; i < items; i += kFinalizeThreads)
#pragma unroll
    for (int s = 0; s < kNumStats; ++s) acc[s] += partials[i * kNumStats + s];
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
    double total[kNumStats];
    for (int s = 0; s < kNumStats; ++s) total[s] = stats[s] = sh[s][0];
    *loss = static_cast<loss_t>(reduce_stats(total, reduction, lambda));
  }
}

}  // namespace

cudaError_t launch_forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                           void* loss_scalar, cudaStream_t stream) {
  const bool fp64 = pb.logits_dtype == DType::kFloat64;
  if (items > 0) {
    const GradSource none;
    if (fp64) {
      launch_tile_pairs<Pass::kForward, double>(pb, items, none, loss_map, partials, stream);
    } else {
      launch_tile_pairs<Pass::kForward, float>(pb, items, none, loss_map, partials, stream);
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (fp64) {
    finalize_kernel<double><<<1, kFinalizeThreads, 0, stream>>>(partials, items, stats, static_cast<double*>(loss_scalar),
                                                                pb.params.reduction, pb.params.symmetry_weight);
  } else {
    finalize_kernel<float><<<1, kFinalizeThreads, 0, stream>>>(partials, items, stats, static_cast<float*>(loss_scalar),
                                                               pb.params.reduction, pb.params.symmetry_weight);
  }
  return cudaGetLastError();
}

cudaError_t launch_backward(const Problem& pb, const GradSource& src, void* grad, int64_t items,
                            cudaStream_t stream) {
  if (items == 0) return cudaSuccess;
  if (pb.logits_dtype == DType::kFloat64) {
    launch_tile_pairs<Pass::kBackward, double>(pb, items, src, grad, nullptr, stream);
  } else {
    launch_tile_pairs<Pass::kBackward, float>(pb, items, src, grad, nullptr, stream);
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace symfocal
