// Which kernels a call launches, in what order, with which accumulation type
// and kernel shape, written once for any launcher: launch.cu's, on a CUDA
// stream, and tests/cuda_emulator's, on the CPU. A Launcher provides
//   template <Pass P, typename acc_t, class Shape>
//   void tile_pairs(const Problem&, int64_t items, const GradSource&, void* out, double* partials,
//                   bool cell_access);
//   void finalize_chunks(const double* partials, int64_t items, double* chunk_sums);
//   void sample_sums(const double* partials, int64_t per_sample, int64_t batch, double* rows);
//   template <typename loss_t>
//   void finalize(const double* rows, int64_t n, double* stats, loss_t* loss, const Params&,
//                 const double* normalizer);
#pragma once

#include <cstdint>
#include <type_traits>

#include "engine/types.h"
#include "sigmoid/cuda/variants.h"

namespace symfocal {
namespace cuda {
namespace detail {

enum class Pass { kForward, kBackward };

// The forward's per-tile-pair partial sums are added in two levels where one
// block would have many: blocks of kFinalizeChunk rows each, then one block
// over their sums. The order depends on the item count only, never on the
// device, so the same inputs give bitwise the same loss everywhere.
constexpr int64_t kFinalizeChunk = 1024;

// Level-one blocks for `items` partials (0: one block adds them all).
inline int64_t finalize_chunks(int64_t items) {
  return items > kFinalizeChunk ? (items + kFinalizeChunk - 1) / kFinalizeChunk : 0;
}

}  // namespace detail

// Rows of kNumPartials doubles the forward needs after the items' partials (the
// chunk sums, or with normalize sample the samples' sums): the caller allocates
// items + finalize_scratch_rows(pb, items) rows.
inline int64_t finalize_scratch_rows(const Problem& pb, int64_t items) {
  return pb.params.normalize == Normalize::kSample ? pb.batch : detail::finalize_chunks(items);
}

namespace detail {

// The tile-pair launch of a variant: its kernel shape (float accumulation
// only; float64 is for tests and gradcheck) and its host-side access choice.
template <Pass P, typename acc_t, class Launcher>
void launch_tile_pairs_of(Launcher& launch, Variant v, const Problem& pb, int64_t items, const GradSource& src,
                          void* out, double* partials) {
#if defined(SYMFOCAL_CUDA_VARIANTS)
  if constexpr (std::is_same<acc_t, float>::value) {
    if constexpr (P == Pass::kBackward)  // (a forward kernel of this shape would be the default's)
      if (v == Variant::kSerialLoads)
        return launch.template tile_pairs<P, acc_t, SerialLoadsShape>(pb, items, src, out, partials, false);
    if (v == Variant::kThreeBlocks)
      return launch.template tile_pairs<P, acc_t, ThreeBlocksShape>(pb, items, src, out, partials, false);
    if (v == Variant::kHalfThreads)
      return launch.template tile_pairs<P, acc_t, HalfThreadsShape>(pb, items, src, out, partials, false);
  }
#endif
  launch.template tile_pairs<P, acc_t, DefaultShape>(pb, items, src, out, partials, uses_cell_access(v));
}

// Per-tile-pair partial sums (and the loss map when loss_map is not null),
// then their fixed-order sum into stats and the loss scalar (float64 for
// float64 logits, else float32). `partials` has items + finalize_scratch_rows(items) rows.
template <typename acc_t, class Launcher>
void plan_forward_as(Launcher& launch, const Problem& pb, Variant v, void* loss_map, double* partials, int64_t items,
                     double* stats, acc_t* loss_scalar) {
  if (items > 0) launch_tile_pairs_of<Pass::kForward, acc_t>(launch, v, pb, items, GradSource{}, loss_map, partials);
  if (pb.params.normalize == Normalize::kSample) {
    double* rows = partials + items * kNumPartials;
    // (L = 0: every sample's rows are zeros, so each sample's scale is 0 too.)
    if (pb.batch > 0) launch.sample_sums(partials, items / pb.batch, pb.batch, rows);
    launch.template finalize<acc_t>(rows, pb.batch, stats, loss_scalar, pb.params, pb.normalizer);
    return;
  }
  const int64_t chunks = uses_one_block_finalize(v) ? 0 : finalize_chunks(items);
  if (chunks == 0) {
    launch.template finalize<acc_t>(partials, items, stats, loss_scalar, pb.params, pb.normalizer);
  } else {
    double* chunk_sums = partials + items * kNumPartials;
    launch.finalize_chunks(partials, items, chunk_sums);
    launch.template finalize<acc_t>(chunk_sums, chunks, stats, loss_scalar, pb.params, pb.normalizer);
  }
}

template <class Launcher>
void plan_forward(Launcher& launch, const Problem& pb, Variant v, void* loss_map, double* partials, int64_t items,
                  double* stats, void* loss_scalar) {
  if (pb.logits_dtype == DType::kFloat64) {
    plan_forward_as<double>(launch, pb, v, loss_map, partials, items, stats, static_cast<double*>(loss_scalar));
  } else {
    plan_forward_as<float>(launch, pb, v, loss_map, partials, items, stats, static_cast<float*>(loss_scalar));
  }
}

// grad_logits in one pass.
template <class Launcher>
void plan_backward(Launcher& launch, const Problem& pb, Variant v, const GradSource& src, void* grad, int64_t items) {
  if (items == 0) return;
  if (pb.logits_dtype == DType::kFloat64) {
    launch_tile_pairs_of<Pass::kBackward, double>(launch, v, pb, items, src, grad, nullptr);
  } else {
    launch_tile_pairs_of<Pass::kBackward, float>(launch, v, pb, items, src, grad, nullptr);
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
