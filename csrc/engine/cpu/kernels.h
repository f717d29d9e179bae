// The CPU kernels' entry points. Each instruction set gets its own copy in a
// namespace named after it (kernels_<isa>.cpp); the unqualified names below
// are the run-time dispatch of dispatch.cpp.
#pragma once

#include "softmax/types.h"
#include "engine/tiles.h"
#include "engine/types.h"

namespace symfocal {
namespace cpu {

// Modes none and upper without a symmetry penalty read no cell's mirror: the CPU streams them row by
// row (sigmoid/cpu/stream_impl.h), kStreamRows rows of one sample a work item; everything else goes
// by tile pairs (engine/tiles.h). Either way the items depend on the shape alone.
constexpr int kStreamRows = 8;
inline bool streams(const Problem& pb) {
  return (pb.params.mode == Mode::kNone || pb.params.mode == Mode::kUpper) && pb.params.symmetry_weight == 0.0;
}
inline int64_t stream_row_blocks(int64_t L) { return (L + kStreamRows - 1) / kStreamRows; }

// How many partial-sum rows forward writes: one a work item, a sample's items consecutive.
inline int64_t work_items(const Problem& pb) {
  if (pb.L == 0) return 0;
  return pb.batch * (streams(pb) ? stream_row_blocks(pb.L) : tile_pairs_per_sample(num_tiles(pb.L)));
}

// Per-work-item partial sums into partials[item * kNumPartials + stat] and,
// when loss_map is not null, the per-cell loss map; when grad_unit is not
// null, the gradient of the unnormalized focal sum times grad_scale (all in [batch, L, L],
// contiguous, the logits dtype). At most one of the two is not null.
void forward(const Problem& pb, void* loss_map, double* partials, void* grad_unit, double grad_scale = 1.0);

// grad_logits ([batch, L, L], contiguous, the logits dtype) in one pass.
void backward(const Problem& pb, const GradSource& src, void* grad);

// The softmax focal loss over bins (softmax/cpu/kernels_impl.h): per-tile-pair
// partials [item, kNumSoftmaxPartials]; when loss_map ([batch, L, L]) is not
// null, the per-cell losses; when grad_unit ([batch, L, L, bins]) is not null,
// the gradient of each sample's unnormalized loss sum, times sample_grad_scale[b] where that is
// not null. Both contiguous, the logits dtype; at most one of them not null.
void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, void* grad_unit,
                     const double* sample_grad_scale = nullptr);

// Each sample's number of cells that count (kSampleCells before any pass: what lets the training
// forward scale its gradient as it writes it).
void softmax_sample_cells(const SoftmaxProblem& pb, double* cells_per_sample);

// grad_logits ([batch, L, L, bins], contiguous, the logits dtype) in one pass.
void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad);

// Name of the instruction set the dispatch picked ("avx512", "avx2", "default").
const char* isa_in_use();

#define SYMFOCAL_DECLARE_CPU_KERNELS(ISA)                                  \
  namespace ISA {                                                          \
  void forward(const Problem& pb, void* loss_map, double* partials, void* grad_unit, double grad_scale); \
  void backward(const Problem& pb, const GradSource& src, void* grad);     \
  void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, void* grad_unit, \
                       const double* sample_grad_scale);                    \
  void softmax_sample_cells(const SoftmaxProblem& pb, double* cells_per_sample); \
  void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad); \
  }
SYMFOCAL_DECLARE_CPU_KERNELS(DEFAULT)
#if defined(__x86_64__)
SYMFOCAL_DECLARE_CPU_KERNELS(AVX2)
SYMFOCAL_DECLARE_CPU_KERNELS(AVX512)
#endif
#undef SYMFOCAL_DECLARE_CPU_KERNELS

}  // namespace cpu
}  // namespace symfocal
