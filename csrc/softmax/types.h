// The softmax focal loss over bins (SPEC.md, "Distogram heads"): the plain
// data its kernels work from. The cells are those of the binary loss, so a
// SoftmaxProblem carries a Problem for the [..., L, L] geometry (batch, L,
// lengths, mask, mode, min_separation: what engine/tiles.h reads) and adds the bins.
// No torch types here, so the CUDA translation units compile without ATen.
#pragma once

#include <cstdint>

#include "engine/types.h"

namespace symfocal {

// Bins a cell may have: a cell's bins are staged in buffers of this size.
constexpr int kMaxBins = 128;

// Integer targets hold a bin index per cell; soft targets a distribution over the bins.
enum class BinTarget : int32_t { kSoft = 0, kUInt8 = 1, kInt32 = 2, kInt64 = 3 };

// Per-sample statistics: [batch, kNumSampleStats] float64.
//   kSampleLoss   sum of the losses of the sample's valid cells
//   kSampleCells  number of valid cells
//   kSampleScale  d (reduced loss) / d (kSampleLoss): what backward multiplies a cell's gradient by
enum SampleStat : int { kSampleLoss = 0, kSampleCells = 1, kSampleScale = 2, kNumSampleStats = 3 };
// Per-tile-pair partial sums: the first two of the above.
constexpr int kNumSoftmaxPartials = 2;

// How the two cells of a pair (i, j), (j, i) meet softmaxes, by mode.
enum class Sharing : int32_t {
  kSymmetric,  // sum, average: one softmax of s (x_ij + x_ji), with both cells' targets
  kPair,       // pair: softmax(x_ij) and softmax(x_ji), each with both cells' targets, halved
  kOwn,        // none, upper: each cell its own softmax
};

SYMFOCAL_HOST_DEVICE Sharing sharing_of(Mode mode) {
  if (mode == Mode::kSum || mode == Mode::kAverage) return Sharing::kSymmetric;
  return mode == Mode::kPair ? Sharing::kPair : Sharing::kOwn;
}

// ignore_index of index targets: a cell whose bin index equals it does not count.
SYMFOCAL_HOST_DEVICE bool bin_ignored(const Params& p, int64_t bin) {
  return p.has_ignore_index && static_cast<double>(bin) == p.ignore_index;
}

struct SoftmaxProblem {
  // logits and target of `cells` view bin 0 of each cell ([..., L, L]); the
  // bins lie bin_stride elements apart. cells.params: mode (also kSum),
  // gamma, label_smoothing, min_separation, reduction.
  Problem cells;
  int32_t bins = 0;
  int64_t logits_bin_stride = 1;
  int64_t target_bin_stride = 1;  // soft targets
  BinTarget target_kind = BinTarget::kInt64;
  const double* alpha = nullptr;  // [bins] class weights, or nullptr for none
  Normalize normalize = Normalize::kCells;
};

// What the backward pass reads, from device memory: the incoming gradient (a
// scalar, or a [..., L, L] map for reduction none) and the per-sample scales.
struct SoftmaxGradSource {
  const void* grad_scalar = nullptr;
  MapView grad_map;
  const double* sample_stats = nullptr;  // [batch, kNumSampleStats]
};

}  // namespace symfocal
