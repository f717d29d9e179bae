// Which kernels a call launches, in what order and with which accumulation
// type, written once for any launcher: launch.cu's, on a CUDA stream, and
// tests/cuda_emulator's, on the CPU. A Launcher provides
//   template <Pass P, typename acc_t>
//   void tile_pairs(const Problem&, int64_t items, const GradSource&, void* out, double* partials);
//   template <typename loss_t>
//   void finalize(const double* partials, int64_t items, double* stats, loss_t* loss, Reduction, double lambda);
#pragma once

#include <cstdint>

#include "../symfocal.h"

namespace symfocal {
namespace cuda {
namespace detail {

enum class Pass { kForward, kBackward };

// Per-tile-pair partial sums (and the loss map when loss_map is not null),
// then their fixed-order sum into stats and the loss scalar (float64 for
// float64 logits, else float32).
template <class Launcher>
void plan_forward(Launcher& launch, const Problem& pb, void* loss_map, double* partials, int64_t items,
                  double* stats, void* loss_scalar) {
  const bool fp64 = pb.logits_dtype == DType::kFloat64;
  const Reduction red = pb.params.reduction;
  const double lambda = pb.params.symmetry_weight;
  if (fp64) {
    if (items > 0) launch.template tile_pairs<Pass::kForward, double>(pb, items, GradSource{}, loss_map, partials);
    launch.template finalize<double>(partials, items, stats, static_cast<double*>(loss_scalar), red, lambda);
  } else {
    if (items > 0) launch.template tile_pairs<Pass::kForward, float>(pb, items, GradSource{}, loss_map, partials);
    launch.template finalize<float>(partials, items, stats, static_cast<float*>(loss_scalar), red, lambda);
  }
}

// grad_logits in one pass.
template <class Launcher>
void plan_backward(Launcher& launch, const Problem& pb, const GradSource& src, void* grad, int64_t items) {
  if (items == 0) return;
  if (pb.logits_dtype == DType::kFloat64) {
    launch.template tile_pairs<Pass::kBackward, double>(pb, items, src, grad, nullptr);
  } else {
    launch.template tile_pairs<Pass::kBackward, float>(pb, items, src, grad, nullptr);
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
