// Entry points of the CUDA kernels (launch.h): the tile-pair passes, compiled
// in tile_pairs_*.cu, and the fixed-order final sums of the forward pass.
#include <atomic>

#include "sigmoid/cuda/finalize_kernel.cuh"
#include "sigmoid/cuda/launch.h"
#include "sigmoid/cuda/kernel_launch.cuh"

extern SYMFOCAL_TILE_PAIRS(kForward, float, DefaultShape);
extern SYMFOCAL_TILE_PAIRS(kForward, double, DefaultShape);
extern SYMFOCAL_TILE_PAIRS(kBackward, float, DefaultShape);
extern SYMFOCAL_TILE_PAIRS(kBackward, double, DefaultShape);
#if defined(SYMFOCAL_CUDA_VARIANTS)
extern SYMFOCAL_TILE_PAIRS(kForward, float, ThreeBlocksShape);
extern SYMFOCAL_TILE_PAIRS(kForward, float, HalfThreadsShape);
extern SYMFOCAL_TILE_PAIRS(kBackward, float, SerialLoadsShape);
extern SYMFOCAL_TILE_PAIRS(kBackward, float, ThreeBlocksShape);
extern SYMFOCAL_TILE_PAIRS(kBackward, float, HalfThreadsShape);
#endif

namespace symfocal {
namespace cuda {
namespace {

using detail::Pass;

std::atomic<Variant> g_variant{Variant::kDefault};

// launch_plan.h's launcher on a CUDA stream; keeps the first launch error.
struct StreamLauncher {
  cudaStream_t stream;
  cudaError_t error = cudaSuccess;

  template <Pass P, typename acc_t, class Shape>
  void tile_pairs(const Problem& pb, int64_t items, const GradSource& src, void* out, double* partials,
                  bool cell_access) {
    if (error != cudaSuccess) return;
    detail::launch_tile_pairs<P, acc_t, Shape>(pb, items, src, out, partials, cell_access, stream);
    error = cudaGetLastError();
  }

  void finalize_chunks(const double* partials, int64_t items, double* chunk_sums) {
    if (error != cudaSuccess) return;
    const auto blocks = static_cast<unsigned>(detail::finalize_chunks(items));
    detail::finalize_chunks_kernel<<<blocks, detail::kFinalizeThreads, 0, stream>>>(partials, items, chunk_sums);
    error = cudaGetLastError();
  }

  void sample_sums(const double* partials, int64_t per_sample, int64_t batch, double* rows) {
    if (error != cudaSuccess) return;
    const auto blocks = static_cast<unsigned>(batch < 65535 ? batch : 65535);
    detail::sample_sums_kernel<<<blocks, detail::kFinalizeThreads, 0, stream>>>(partials, per_sample, batch, rows);
    error = cudaGetLastError();
  }

  template <typename loss_t>
  void finalize(const double* rows, int64_t n, double* stats, loss_t* loss, const Params& params,
                const double* normalizer) {
    if (error != cudaSuccess) return;
    detail::finalize_kernel<loss_t><<<1, detail::kFinalizeThreads, 0, stream>>>(rows, n, stats, loss, params,
                                                                               normalizer);
    error = cudaGetLastError();
  }
};

}  // namespace

bool set_variant(Variant v) {
  if (!variant_compiled(v)) return false;
  g_variant = v;
  return true;
}

Variant current_variant() { return g_variant; }

cudaError_t launch_forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                           void* loss_scalar, cudaStream_t stream) {
  StreamLauncher launch{stream};
  detail::plan_forward(launch, pb, g_variant, loss_map, partials, items, stats, loss_scalar);
  return launch.error;
}

cudaError_t launch_backward(const Problem& pb, const GradSource& src, void* grad, int64_t items,
                            cudaStream_t stream) {
  StreamLauncher launch{stream};
  detail::plan_backward(launch, pb, g_variant, src, grad, items);
  return launch.error;
}

}  // namespace cuda
}  // namespace symfocal
