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
namespace {

using detail::Pass;

// launch_plan.h's launcher on a CUDA stream; keeps the first launch error.
struct StreamLauncher {
  cudaStream_t stream;
  cudaError_t error = cudaSuccess;

  template <Pass P, typename acc_t>
  void tile_pairs(const Problem& pb, int64_t items, const GradSource& src, void* out, double* partials) {
    if (error != cudaSuccess) return;
    detail::launch_tile_pairs<P, acc_t>(pb, items, src, out, partials, stream);
    error = cudaGetLastError();
  }

  template <typename loss_t>
  void finalize(const double* partials, int64_t items, double* stats, loss_t* loss, Reduction reduction,
                double lambda) {
    if (error != cudaSuccess) return;
    detail::finalize_kernel<loss_t>
        <<<1, detail::kFinalizeThreads, 0, stream>>>(partials, items, stats, loss, reduction, lambda);
    error = cudaGetLastError();
  }
};

}  // namespace

cudaError_t launch_forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                           void* loss_scalar, cudaStream_t stream) {
  StreamLauncher launch{stream};
  detail::plan_forward(launch, pb, loss_map, partials, items, stats, loss_scalar);
  return launch.error;
}

cudaError_t launch_backward(const Problem& pb, const GradSource& src, void* grad, int64_t items,
                            cudaStream_t stream) {
  StreamLauncher launch{stream};
  detail::plan_backward(launch, pb, src, grad, items);
  return launch.error;
}

}  // namespace cuda
}  // namespace symfocal
