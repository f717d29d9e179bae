#pragma once
// Launching the tile-pair kernels (sigmoid/cuda/kernel.cuh) on a stream. Each
// (pass, accumulation type) is compiled in its own file (tile_pairs_*.cu) so
// that the build runs them in parallel; launch.cu only links to them.
#include <cuda_runtime.h>

#include "sigmoid/cuda/kernel.cuh"

namespace symfocal {
namespace cuda {
namespace detail {

template <Pass P, typename acc_t, class Shape>
void launch_tile_pairs(const Problem& pb, int64_t items, const GradSource& src, void* out, double* partials,
                       bool cell_access, cudaStream_t stream) {
  const TilePairKernel kernel = tile_pair_kernel_for<P, Shape, acc_t>(pb.params.mode);
  kernel<<<grid_for(items), Shape::kThreads, 0, stream>>>(pb, items, src, wide_access(pb, src, out, cell_access),
                                                           out, partials);
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal

#define SYMFOCAL_TILE_PAIRS(P, ACC, SHAPE)                                                                 \
  template void symfocal::cuda::detail::launch_tile_pairs<symfocal::cuda::detail::Pass::P, ACC,          \
                                                          symfocal::cuda::SHAPE>(                        \
      const symfocal::Problem&, int64_t, const symfocal::GradSource&, void*, double*, bool, cudaStream_t)
