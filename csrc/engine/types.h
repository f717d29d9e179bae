// The plain data every kernel works from: the options of SPEC.md as values,
// strided views of the [..., L, L] inputs, and the launcher declarations.
// No torch types here, so the CUDA translation unit compiles without ATen.
#pragma once

#include <cstdint>

// Inlined everywhere: the math is small, and inlining lets the compiler keep
// SIMD values in registers across the calls of one tile's loop.
#if defined(__CUDACC__)
#define SYMFOCAL_HOST_DEVICE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define SYMFOCAL_HOST_DEVICE inline __attribute__((always_inline))
#else
#define SYMFOCAL_HOST_DEVICE inline
#endif

namespace symfocal {

// Square tiles; a work item is the tile pair (I, J), I <= J, with its mirror (J, I).
constexpr int kTile = 32;
// Batch dimensions after merging the ones that are contiguous with each other.
constexpr int kMaxBatchDims = 6;

// kSum (x + xᵀ, the AlphaFold / OpenFold distogram head) is a mode of the softmax loss only.
enum class Mode : int32_t { kNone = 0, kAverage = 1, kPair = 2, kUpper = 3, kSum = 4 };
enum class Penalty : int32_t { kL1 = 0, kL2 = 1, kHuber = 2 };
enum class Reduction : int32_t { kNone = 0, kMean = 1, kSum = 2 };
// What a mean divides by: the valid cells, the positive target mass (the binary loss only: RetinaNet's
// count of positives), or each sample's own cells (then the mean over the samples).
enum class Normalize : int32_t { kCells = 0, kSample = 1, kPositives = 2 };
// (1 - p_t)^gamma has cheap exact forms for these exponents.
enum class GammaKind : int32_t { kZero = 0, kOne = 1, kTwo = 2, kGeneral = 3 };
// int8: binary targets with a negative ignore_index (ESM's -1 for an unknown contact).
enum class DType : int32_t { kFloat16, kBFloat16, kFloat32, kFloat64, kBool, kUInt8, kInt8 };

struct Params {
  Mode mode = Mode::kAverage;
  bool has_alpha = true;
  double alpha = 0.25;
  double gamma = 2.0;
  GammaKind gamma_kind = GammaKind::kTwo;
  double pos_weight = 1.0;
  double label_smoothing = 0.0;
  int64_t min_separation = 0;
  double symmetry_weight = 0.0;
  Penalty penalty = Penalty::kL1;
  double huber_delta = 1.0;
  Reduction reduction = Reduction::kMean;
  Normalize normalize = Normalize::kCells;
  // A target equal to ignore_index drops its cell, as a mask would (binary: the raw target value;
  // softmax: a bin index).
  bool has_ignore_index = false;
  double ignore_index = 0.0;
};

// A [batch..., L, L] tensor seen through its strides (stride 0 for broadcast
// dimensions), so that no input is copied to contiguous or expanded.
struct MapView {
  const void* data = nullptr;
  int32_t nbatch = 0;
  int64_t batch_size[kMaxBatchDims] = {};
  int64_t batch_stride[kMaxBatchDims] = {};
  int64_t row_stride = 0;
  int64_t col_stride = 0;

  // Element offset of sample b (row-major over the batch dims).
  SYMFOCAL_HOST_DEVICE int64_t batch_offset(int64_t b) const {
    int64_t off = 0;
    for (int d = nbatch - 1; d >= 0; --d) {
      const int64_t idx = b % batch_size[d];
      b /= batch_size[d];
      off += idx * batch_stride[d];
    }
    return off;
  }
};

// Everything a kernel needs to see the inputs of one call.
struct Problem {
  int64_t batch = 0;  // product of the batch dims
  int64_t L = 0;
  MapView logits, target, mask;
  // The weight map: each valid cell's loss times its weight (not the count a mean divides by);
  // float32, float64 for float64 logits; broadcast through stride 0.
  MapView weight;
  DType logits_dtype = DType::kFloat32;
  DType target_dtype = DType::kFloat32;
  DType mask_dtype = DType::kBool;
  bool has_mask = false;
  bool has_weight = false;
  const int64_t* lengths = nullptr;  // nullptr: every sample has length L
  int64_t lengths_div = 1;           // sample b reads lengths[b / lengths_div]
  // A float64 scalar on the logits' device that replaces the count a mean divides
  // by (e.g. positives summed over data-parallel ranks), or nullptr.
  const double* normalizer = nullptr;
  // Per-channel alpha and pos_weight of [..., C, L, L] maps (float64 [channels] on the
  // logits' device, or nullptr): sample b takes channel b % channels's.
  const double* channel_alpha = nullptr;
  const double* channel_pos_weight = nullptr;
  int64_t channels = 1;
  Params params;
};

// Slots of the per-tile-pair partial sums (the first kNumPartials) and of the
// final statistics. kTargetSum is the valid cells' target mass as the loss sees
// it (smoothed); the finalize turns it into the positive mass of the targets.
// kFocalScale: d loss / d (focal sum), what backward multiplies a cell's term by;
// with normalize kSample each sample's own follows, at kNumStats + sample.
enum Stat : int {
  kFocalSum = 0, kCellCount = 1, kPenaltySum = 2, kPairCount = 3, kTargetSum = 4,
  kNumPartials = 5, kFocalScale = 5, kNumStats = 6
};

// What the backward pass reads from device memory, never from the host:
// the incoming gradient and the forward statistics.
struct GradSource {
  const void* grad_scalar = nullptr;  // reduction mean/sum: one value of the loss dtype
  MapView grad_map;                   // reduction none: a [..., L, L] gradient
  const double* stats = nullptr;      // the forward's statistics (kNumStats, + batch with normalize kSample)
};

SYMFOCAL_HOST_DEVICE int64_t num_tiles(int64_t L) { return (L + kTile - 1) / kTile; }

}  // namespace symfocal
