// Entry points of the CUDA kernels (launch.h): the tile-pair passes, compiled
// in tile_pairs_*.cu, and the fixed-order final sum of the forward pass.
#include "finalize_kernel.cuh"
#include "launch.h"
#include "tile_pairs_launch.cuh"

extern SYMFOCAL_TILE_PAIRS(kForward, float);
extern SYMFOCAL_TILE_PAIRS(kForward, double);
extern SYMFOCAL_TILE_PAIRS(kBackward, float);
extern SYMFOCAL_TILE_PAIRS(kBackward, double);

namespace symfocal {
namespace cuda {
using detail::finalize_kernel;
using detail::kFinalizeThreads;
using detail::launch_tile_pairs;
using detail::Pass;

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
