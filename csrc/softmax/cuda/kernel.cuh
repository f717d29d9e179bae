#pragma once
// The CUDA kernels of the softmax focal loss over bins (SPEC.md, "Distogram
// heads"). The traversal is the binary loss's tile pairs (engine/tiles.h), each split
// into kSoftmaxSlices units of kSliceRows tile rows, one thread block a unit,
// so that a crop of L = 384 (78 tile pairs) still fills a GPU. A warp takes
// one cell pair (i, j), (j, i) at a time, its lanes over the bins (lane l
// holds bins l, l + 32, ...): for channel-last logits both cells' bins are
// contiguous, so every load and store is coalesced without a transpose. The
// log-sum-exp and the sums over bins are warp shuffles (xor butterflies: every
// lane gets the same bits).
//
// The math is softmax/math.h's, in fp32 (fp64 for float64 logits). The forward
// writes per-unit partial sums, summed per sample and then over samples in a
// fixed order (no float atomics: bitwise reproducible). The backward
// recomputes from the inputs and reads the incoming gradient and the sample
// scales from device memory. Device code only: softmax/cuda/launch.cu launches it,
// tests/cuda_emulator runs it as host code.
#include <cstdint>

#include "softmax/math.h"
#include "engine/tiles.h"
#include "engine/cuda/cell_access.cuh"
#include "sigmoid/cuda/launch_plan.h"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int kSoftmaxThreads = 256;
constexpr int kSoftmaxWarps = kSoftmaxThreads / 32;
constexpr int kSoftmaxSlices = 4;
constexpr int kSliceRows = kTile / kSoftmaxSlices;
constexpr unsigned kFullMask = 0xffffffffu;

template <typename V>
__device__ __forceinline__ V warp_sum(V v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

template <typename V>
__device__ __forceinline__ V warp_max(V v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = sf_max(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// The lane's K bins of one softmax: logits in, log-probabilities and probabilities out.
template <typename acc_t, int K>
struct LaneBins {
  acc_t lp[K], p[K];
};

// In place: logits -> log softmax, and the probabilities. The largest bin adds
// exactly 1 to the sum of exps; kept apart, log(sum) is log1p(the rest), and
// log p = (z - m) - log1p(rest): a bin with p close to 1 keeps the relative
// accuracy of its small loss (as the CPU kernel does).
template <typename acc_t, int K>
__device__ __forceinline__ void lane_log_softmax(LaneBins<acc_t, K>& s, const bool (&has)[K]) {
  acc_t m = s.lp[0];  // bin `lane` exists for every lane < C; C >= 2, and lanes past C copy a real bin
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (has[k]) m = sf_max(m, s.lp[k]);
  m = warp_max(m);
  acc_t rest = 0, ties = 0;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const acc_t e = has[k] ? sf_exp(s.lp[k] - m) : acc_t(0);
    s.p[k] = e;
    const bool at_max = has[k] && s.lp[k] == m;
    rest += at_max ? acc_t(0) : e;
    ties += at_max ? acc_t(1) : acc_t(0);
  }
  const acc_t others = warp_sum(rest) + (warp_sum(ties) - acc_t(1));
  const acc_t u = acc_t(1) + others;
  const acc_t r = acc_t(1) / u;
  const acc_t log_sum = log1p_small(others, u, r);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    s.lp[k] = (s.lp[k] - m) - log_sum;
    s.p[k] *= r;
  }
}

template <typename acc_t>
__device__ __forceinline__ void factors_of(GammaKind kind, acc_t lp, acc_t p, acc_t gamma, acc_t& phi, acc_t& F) {
  switch (kind) {
    case GammaKind::kZero: bin_focal_factors<GammaKind::kZero>(lp, p, gamma, phi, F); break;
    case GammaKind::kOne: bin_focal_factors<GammaKind::kOne>(lp, p, gamma, phi, F); break;
    case GammaKind::kTwo: bin_focal_factors<GammaKind::kTwo>(lp, p, gamma, phi, F); break;
    default: bin_focal_factors<GammaKind::kGeneral>(lp, p, gamma, phi, F); break;
  }
}

// Bin `bin` of a lane-distributed array, on every lane.
template <typename acc_t, int K>
__device__ __forceinline__ acc_t bin_value(const acc_t (&v)[K], int64_t bin) {
  const int slot = static_cast<int>(bin >> 5);
  acc_t mine = v[0];
#pragma unroll
  for (int k = 1; k < K; ++k)
    if (k == slot) mine = v[k];
  return __shfl_sync(kFullMask, mine, static_cast<int>(bin & 31));
}

SYMFOCAL_HOST_DEVICE int bin_index_size(BinTarget kind) {
  return kind == BinTarget::kUInt8 ? 1 : kind == BinTarget::kInt32 ? 4 : 8;
}

__device__ __forceinline__ int64_t read_bin(const MapView& v, BinTarget kind, int64_t off) {
  SYMFOCAL_CHECK_GLOBAL_ACCESS(static_cast<const char*>(v.data) + off * bin_index_size(kind), bin_index_size(kind), 1);
  switch (kind) {
    case BinTarget::kUInt8: return static_cast<const uint8_t*>(v.data)[off];
    case BinTarget::kInt32: return static_cast<const int32_t*>(v.data)[off];
    default: return static_cast<const int64_t*>(v.data)[off];
  }
}

// loss[cell] += v with a constant index (cell is 0 or 1).
template <typename acc_t>
__device__ __forceinline__ void add_to_cell(acc_t (&loss)[2], int cell, acc_t v) {
  loss[0] += cell == 0 ? v : acc_t(0);
  loss[1] += cell == 1 ? v : acc_t(0);
}

// One unit (a slice of a tile pair). Forward: partial sums into
// partials[unit] and, when `out` is not null, the loss map; backward: the
// gradient into `out`.
template <Pass P, Sharing S, int K, typename acc_t>
// (min 1 block an SM: with the bound alone, nvcc 13.0 capped some instantiations at 64-128 registers and
// spilled; the float kernels take 70-136 registers on sm_80 and sm_90: 2-3 blocks of 256 threads an SM.)
__global__ void __launch_bounds__(kSoftmaxThreads, 1)
    softmax_pairs_kernel(const SoftmaxProblem pb, int64_t units, const SoftmaxGradSource src, void* out,
                         double* partials) {
  // Double-buffered by unit parity: warp w writes buffer p again two units
  // later, after the next unit's barrier, which thread 0 reaches only after
  // reading buffer p. One barrier a unit.
  __shared__ double sh[2][kSoftmaxWarps][kNumSoftmaxPartials];
  SYMFOCAL_SHARED_DECLARED(sh);
  const Problem& cells = pb.cells;
  const Params& prm = cells.params;
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int C = pb.bins;
  const int64_t L = cells.L;
  bool has[K];
  acc_t alpha[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int c = lane + 32 * k;
    has[k] = c < C;
    alpha[k] = acc_t(1);
    if (has[k] && pb.alpha != nullptr) {
      SYMFOCAL_CHECK_GLOBAL_ACCESS(&pb.alpha[c], sizeof(double), 1);
      alpha[k] = static_cast<acc_t>(pb.alpha[c]);
    }
  }
  const acc_t gamma = static_cast<acc_t>(prm.gamma);
  const GammaKind gamma_kind = prm.gamma_kind;
  const bool sparse = pb.target_kind != BinTarget::kSoft && prm.label_smoothing == 0.0;
  const acc_t keep = static_cast<acc_t>(1.0 - prm.label_smoothing);
  const acc_t shift = static_cast<acc_t>(prm.label_smoothing / C);
  const acc_t sym_scale = prm.mode == Mode::kAverage ? acc_t(0.5) : acc_t(1);
  const bool scalar_grad = P == Pass::kBackward && src.grad_scalar != nullptr;
  const DType weight_dtype = cells.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
  double grad_scalar = 0.0;
  if (scalar_grad) {
    const int es = cells.logits_dtype == DType::kFloat64 ? 8 : 4;
    SYMFOCAL_CHECK_GLOBAL_ACCESS(src.grad_scalar, es, 1);
    grad_scalar = es == 8 ? *static_cast<const double*>(src.grad_scalar)
                          : static_cast<double>(*static_cast<const float*>(src.grad_scalar));
  }

  int parity = 0;
  for (int64_t unit = blockIdx.x; unit < units; unit += gridDim.x, parity ^= 1) {
    const TileGeometry g = tile_geometry(cells, unit / kSoftmaxSlices);
    const int r_begin = static_cast<int>(unit % kSoftmaxSlices) * kSliceRows;
    const int r_end = g.rows < r_begin + kSliceRows ? g.rows : r_begin + kSliceRows;
    const int pairs = r_end > r_begin ? (r_end - r_begin) * g.cols : 0;
    acc_t scale = acc_t(1);
    if (scalar_grad) {
      SYMFOCAL_CHECK_GLOBAL_ACCESS(&src.sample_stats[g.b * kNumSampleStats], kNumSampleStats * sizeof(double), 1);
      scale = static_cast<acc_t>(src.sample_stats[g.b * kNumSampleStats + kSampleScale] * grad_scalar);
    }
    const int64_t xb0 = cells.logits.batch_offset(g.b);
    const int64_t tb0 = cells.target.batch_offset(g.b);
    const int64_t mb0 = cells.has_mask ? cells.mask.batch_offset(g.b) : 0;
    const int64_t wb0 = cells.has_weight ? cells.weight.batch_offset(g.b) : 0;
    const int64_t gb0 = P == Pass::kBackward && !scalar_grad ? src.grad_map.batch_offset(g.b) : 0;
    double loss_sum = 0.0, cell_count = 0.0;

    for (int q = warp; q < pairs; q += kSoftmaxWarps) {
      const int r = r_begin + q / g.cols, c = q % g.cols;
      if (g.diagonal && c < r) continue;  // a diagonal tile: each unordered pair once (warp-uniform)
      const int64_t i = g.i0 + r, j = g.j0 + c;
      const bool diagonal = i == j;
      const bool admitted = admits(i, j, g.len, prm.min_separation);
      // Per cell x (0: (i, j), 1: (j, i)): validity (for the count), loss weight (validity times
      // the weight map's value), gradient weight (that times the backward scale), bin index.
      acc_t valid[2], loss_weight[2], weight[2];
      int64_t bin[2] = {0, 0};
#pragma unroll
      for (int x = 0; x < 2; ++x) {
        const int64_t ri = x == 0 ? i : j, rj = x == 0 ? j : i;
        bool ok = admitted && in_triangle(prm.mode, ri, rj) && !(x == 1 && diagonal);
        if (ok && cells.has_mask)
          ok = load_as<acc_t>(cells.mask.data, cells.mask_dtype,
                              mb0 + ri * cells.mask.row_stride + rj * cells.mask.col_stride) != acc_t(0);
        if (ok && pb.target_kind != BinTarget::kSoft) {
          const int64_t raw = read_bin(cells.target, pb.target_kind,
                                       tb0 + ri * cells.target.row_stride + rj * cells.target.col_stride);
          ok = !bin_ignored(prm, raw);
          // In range when validated; clamped so that validate=False never reads out of bounds.
          bin[x] = !ok ? 0 : raw < 0 ? 0 : (raw >= C ? C - 1 : raw);
        }
        valid[x] = ok ? acc_t(1) : acc_t(0);
        loss_weight[x] = valid[x];
        if (ok && cells.has_weight)
          loss_weight[x] *= load_as<acc_t>(cells.weight.data, weight_dtype,
                                           wb0 + ri * cells.weight.row_stride + rj * cells.weight.col_stride);
        weight[x] = P == Pass::kBackward ? loss_weight[x] * scale : acc_t(0);
        if (P == Pass::kBackward && ok && !scalar_grad)
          weight[x] *= load_as<acc_t>(src.grad_map.data, cells.logits_dtype,
                                      gb0 + ri * src.grad_map.row_stride + rj * src.grad_map.col_stride);
      }
      const bool any_valid = valid[0] != acc_t(0) || valid[1] != acc_t(0);
      if (P == Pass::kForward && !any_valid && out == nullptr) continue;
      const int64_t row_own = ((g.b * L + i) * L + j) * C, row_mirror = ((g.b * L + j) * L + i) * C;
      if (P == Pass::kBackward && !any_valid) {  // padding, masked cells: a zero gradient, nothing to read
#pragma unroll
        for (int k = 0; k < K; ++k) {
          if (!has[k]) continue;
          store_as<acc_t>(out, cells.logits_dtype, row_own + lane + 32 * k, acc_t(0));
          if (!diagonal) store_as<acc_t>(out, cells.logits_dtype, row_mirror + lane + 32 * k, acc_t(0));
        }
        continue;
      }
      const int64_t own = xb0 + i * cells.logits.row_stride + j * cells.logits.col_stride;
      const int64_t mirror = xb0 + j * cells.logits.row_stride + i * cells.logits.col_stride;

      // The softmaxes: one of s (x_ij + x_ji) (sym), else of x_ij and (off the diagonal) x_ji.
      LaneBins<acc_t, K> sm[2];
      const int n = diagonal || S == Sharing::kSymmetric ? 1 : 2;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int cb = has[k] ? lane + 32 * k : 0;  // lanes past C read bin 0 (kept out of every sum)
        const acc_t a = load_as<acc_t>(cells.logits.data, cells.logits_dtype, own + cb * pb.logits_bin_stride);
        acc_t b = a;
        if (!diagonal)
          b = load_as<acc_t>(cells.logits.data, cells.logits_dtype, mirror + cb * pb.logits_bin_stride);
        if (S == Sharing::kSymmetric) {
          sm[0].lp[k] = (a + b) * sym_scale;
        } else {
          sm[0].lp[k] = a;
          sm[1].lp[k] = b;
        }
      }
      lane_log_softmax(sm[0], has);
      if (n == 2) lane_log_softmax(sm[1], has);

      // Dense targets of both cells (soft, or smoothed bin indices).
      acc_t t[2][K];
      if (!sparse) {
#pragma unroll
        for (int x = 0; x < 2; ++x) {
          const int64_t ri = x == 0 ? i : j, rj = x == 0 ? j : i;
          const int64_t toff = tb0 + ri * cells.target.row_stride + rj * cells.target.col_stride;
#pragma unroll
          for (int k = 0; k < K; ++k) {
            const int cb = lane + 32 * k;
            acc_t v = acc_t(0);
            if (has[k] && (x == 0 || !diagonal)) {
              if (pb.target_kind == BinTarget::kSoft) {
                v = load_as<acc_t>(cells.target.data, cells.target_dtype, toff + cb * pb.target_bin_stride) * keep +
                    shift;
              } else {
                v = (cb == bin[x] ? keep : acc_t(0)) + shift;
              }
            }
            t[x][k] = v;
          }
        }
      }

      acc_t loss[2] = {acc_t(0), acc_t(0)};
      acc_t grad[2][K];
#pragma unroll
      for (int v = 0; v < 2; ++v) {
        if (v >= n) break;
        // Which cells' targets meet softmax v: (cell, gradient weight, share of the cell's loss).
        int meet_cell[2];
        acc_t meet_w[2], meet_share[2];
        int nm;
        if (diagonal) {
          nm = 1;
          meet_cell[0] = 0;
          meet_w[0] = weight[0];
          meet_share[0] = acc_t(1);
        } else if (S == Sharing::kOwn) {
          nm = 1;
          meet_cell[0] = v;
          meet_w[0] = weight[v];
          meet_share[0] = acc_t(1);
        } else {
          nm = 2;
          const acc_t share = S == Sharing::kPair ? acc_t(0.5) : acc_t(1);
          meet_cell[0] = 0;
          meet_cell[1] = 1;
          meet_w[0] = share * weight[0];
          meet_w[1] = share * weight[1];
          meet_share[0] = meet_share[1] = share;
        }
        acc_t* g = grad[S == Sharing::kSymmetric ? 0 : v];
        // (Every loop below is unrolled and every index a constant, so that nothing lands in local memory.)
        if (sparse) {
          int64_t at[2] = {0, 0};
          acc_t minus[2] = {acc_t(0), acc_t(0)}, qs[2] = {acc_t(0), acc_t(0)}, ps[2] = {acc_t(0), acc_t(0)};
          acc_t A = 0;
#pragma unroll
          for (int m = 0; m < 2; ++m) {
            if (m >= nm) break;
            const int64_t b = meet_cell[m] == 0 ? bin[0] : bin[1];
            const acc_t lpb = bin_value(sm[v].lp, b), pbin = bin_value(sm[v].p, b);
            const acc_t ab = bin_value(alpha, b);
            acc_t phi, F;
            factors_of(gamma_kind, lpb, pbin, gamma, phi, F);
            add_to_cell(loss, meet_cell[m], acc_t(0) - meet_share[m] * weighted(ab, phi));
            at[m] = b;
            minus[m] = meet_w[m] * ab * F;
            qs[m] = acc_t(0) - sf_expm1(lpb);
            ps[m] = pbin;
            A += minus[m];
          }
          if (P == Pass::kBackward) {
#pragma unroll
            for (int k = 0; k < K; ++k) g[k] = sm[v].p[k] * A;
            // At a target bin, p (A - here) - (1 - p) here: no cancellation where p is close to 1.
#pragma unroll
            for (int m = 0; m < 2; ++m) {
              if (m >= nm) break;
              acc_t here = 0, elsewhere = 0;
#pragma unroll
              for (int l = 0; l < 2; ++l) {
                if (l >= nm) break;
                if (at[l] == at[m]) {
                  here += minus[l];
                } else {
                  elsewhere += minus[l];
                }
              }
#pragma unroll
              for (int k = 0; k < K; ++k)
                if (lane + 32 * k == at[m]) g[k] = ps[m] * elsewhere - qs[m] * here;
            }
          }
          continue;
        }
        acc_t aphi[K], aF[K];
#pragma unroll
        for (int k = 0; k < K; ++k) {
          acc_t phi, F;
          factors_of(gamma_kind, sm[v].lp[k], sm[v].p[k], gamma, phi, F);
          aphi[k] = has[k] ? weighted(alpha[k], phi) : acc_t(0);  // a bin at -inf has phi = -inf
          aF[k] = has[k] ? alpha[k] * F : acc_t(0);
        }
        acc_t u[K];
#pragma unroll
        for (int k = 0; k < K; ++k) u[k] = acc_t(0);
        acc_t A = 0;
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          if (m >= nm) break;
          acc_t dot_phi = 0;
#pragma unroll
          for (int k = 0; k < K; ++k) {
            const acc_t tk = meet_cell[m] == 0 ? t[0][k] : t[1][k];
            dot_phi += weighted(tk, aphi[k]);
            const acc_t term = meet_w[m] * tk * aF[k];
            u[k] += term;
            A += term;
          }
          add_to_cell(loss, meet_cell[m], acc_t(0) - meet_share[m] * warp_sum(dot_phi));
        }
        if (P == Pass::kBackward) {
          A = warp_sum(A);
#pragma unroll
          for (int k = 0; k < K; ++k) g[k] = sm[v].p[k] * A - u[k];
        }
      }

      if (P == Pass::kForward) {
        // A cell that does not count is not read (SPEC.md, "Non-finite logits").
        const acc_t l0 = weighted(loss_weight[0], loss[0]), l1 = weighted(loss_weight[1], loss[1]);
        loss_sum += static_cast<double>(l0 + l1);
        cell_count += static_cast<double>(valid[0] + valid[1]);
        if (out != nullptr && lane == 0) {
          const int64_t cell_own = (g.b * L + i) * L + j, cell_mirror = (g.b * L + j) * L + i;
          store_as<acc_t>(out, cells.logits_dtype, cell_own, l0);
          if (!diagonal) store_as<acc_t>(out, cells.logits_dtype, cell_mirror, l1);
        }
        continue;
      }
      // Backward: d/dx of a symmetric softmax's logits is s for each cell (2 s on the diagonal).
      if (S == Sharing::kSymmetric) {
        const acc_t s = diagonal ? acc_t(2) * sym_scale : sym_scale;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          grad[0][k] *= s;
          grad[1][k] = grad[0][k];
        }
      }
      // A gradient row that only terms of weight 0 meet is 0, whatever the logits (SPEC.md, "Non-finite
      // logits"): in modes none and upper that of a cell that does not count.
      {
        const bool none_met = weight[0] == acc_t(0) && weight[1] == acc_t(0);
        const bool zero0 = S == Sharing::kOwn ? weight[0] == acc_t(0) : none_met;
        const bool zero1 = S == Sharing::kOwn ? weight[1] == acc_t(0) : none_met;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          grad[0][k] = zero0 ? acc_t(0) : grad[0][k];
          grad[1][k] = zero1 ? acc_t(0) : grad[1][k];
        }
      }
#pragma unroll
      for (int k = 0; k < K; ++k) {
        if (!has[k]) continue;
        const int cb = lane + 32 * k;
        store_as<acc_t>(out, cells.logits_dtype, row_own + cb, grad[0][k]);
        if (!diagonal) store_as<acc_t>(out, cells.logits_dtype, row_mirror + cb, grad[1][k]);
      }
    }

    if (P == Pass::kForward) {
      if (lane == 0) {
        sh[parity][warp][kSampleLoss] = loss_sum;
        sh[parity][warp][kSampleCells] = cell_count;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        double total_loss = 0.0, total_cells = 0.0;
        for (int w = 0; w < kSoftmaxWarps; ++w) {
          total_loss += sh[parity][w][kSampleLoss];
          total_cells += sh[parity][w][kSampleCells];
        }
        SYMFOCAL_CHECK_GLOBAL_ACCESS(&partials[unit * kNumSoftmaxPartials], kNumSoftmaxPartials * sizeof(double), 1);
        partials[unit * kNumSoftmaxPartials + kSampleLoss] = total_loss;
        partials[unit * kNumSoftmaxPartials + kSampleCells] = total_cells;
      }
    }
  }
}

// Each sample's partials (per_sample consecutive rows), summed in a fixed
// order: thread k adds rows k, k + 256, ..., then a tree. Block b: sample b.
__global__ void __launch_bounds__(kSoftmaxThreads)
    softmax_sample_sums_kernel(const double* partials, int64_t per_sample, int64_t batch, double* rows) {
  __shared__ double sh[kNumSoftmaxPartials][kSoftmaxThreads];
  SYMFOCAL_SHARED_DECLARED(sh);
  const int tid = static_cast<int>(threadIdx.x);
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double acc[kNumSoftmaxPartials] = {0.0, 0.0};
    for (int64_t q = tid; q < per_sample; q += kSoftmaxThreads) {
      const double* row = partials + (b * per_sample + q) * kNumSoftmaxPartials;
      SYMFOCAL_CHECK_GLOBAL_ACCESS(row, kNumSoftmaxPartials * sizeof(double), 1);
      for (int s = 0; s < kNumSoftmaxPartials; ++s) acc[s] += row[s];
    }
    for (int s = 0; s < kNumSoftmaxPartials; ++s) sh[s][tid] = acc[s];
    __syncthreads();
    for (int stride = kSoftmaxThreads / 2; stride > 0; stride >>= 1) {
      if (tid < stride)
        for (int s = 0; s < kNumSoftmaxPartials; ++s) sh[s][tid] += sh[s][tid + stride];
      __syncthreads();
    }
    if (tid == 0) {
      SYMFOCAL_CHECK_GLOBAL_ACCESS(&rows[b * kNumSampleStats], kNumSampleStats * sizeof(double), 1);
      rows[b * kNumSampleStats + kSampleLoss] = sh[kSampleLoss][0];
      rows[b * kNumSampleStats + kSampleCells] = sh[kSampleCells][0];
    }
    __syncthreads();  // sh is read by thread 0 above before the next sample's tree
  }
}

// The reduced loss and every sample's gradient scale (softmax/math.h), one thread.
template <typename loss_t>
__global__ void softmax_reduce_kernel(double* rows, int64_t batch, loss_t* loss, Reduction reduction,
                                      Normalize normalize, const double* normalizer) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  SYMFOCAL_CHECK_GLOBAL_ACCESS(loss, sizeof(loss_t), 1);
  if (batch > 0) SYMFOCAL_CHECK_GLOBAL_ACCESS(rows, batch * kNumSampleStats * sizeof(double), 1);
  if (normalizer != nullptr) SYMFOCAL_CHECK_GLOBAL_ACCESS(normalizer, sizeof(double), 1);
  *loss = static_cast<loss_t>(reduce_samples(rows, batch, reduction, normalize, normalizer));
}

using SoftmaxPairsKernel = void (*)(const SoftmaxProblem, int64_t, const SoftmaxGradSource, void*, double*);

// Bins a lane holds: 2 up to C = 64, else 4 (C <= 128). float64 (tests,
// gradcheck) takes 4 always.
template <typename acc_t>
inline int lane_bins(int bins) {
  return sizeof(acc_t) == 8 || bins > 64 ? 4 : 2;
}

template <Pass P, typename acc_t, int K>
SoftmaxPairsKernel softmax_kernel_with(Mode mode) {
  switch (sharing_of(mode)) {
    case Sharing::kSymmetric: return &softmax_pairs_kernel<P, Sharing::kSymmetric, K, acc_t>;
    case Sharing::kPair: return &softmax_pairs_kernel<P, Sharing::kPair, K, acc_t>;
    default: return &softmax_pairs_kernel<P, Sharing::kOwn, K, acc_t>;
  }
}

template <Pass P, typename acc_t>
SoftmaxPairsKernel softmax_kernel_for(const SoftmaxProblem& pb) {
  if constexpr (sizeof(acc_t) == 8) {
    return softmax_kernel_with<P, acc_t, 4>(pb.cells.params.mode);
  } else {
    return lane_bins<acc_t>(pb.bins) == 2 ? softmax_kernel_with<P, acc_t, 2>(pb.cells.params.mode)
                                          : softmax_kernel_with<P, acc_t, 4>(pb.cells.params.mode);
  }
}

// Units of work (blocks' worth) of a call: kSoftmaxSlices per tile pair.
inline int64_t softmax_units(const SoftmaxProblem& pb) {
  if (pb.cells.L == 0) return 0;
  return pb.cells.batch * tile_pairs_per_sample(num_tiles(pb.cells.L)) * kSoftmaxSlices;
}

// The launches of a forward and a backward call, for any launcher (softmax/cuda/launch.cu's
// on a stream, the emulator's on the CPU). A Launcher provides
//   void pairs(SoftmaxPairsKernel, const SoftmaxProblem&, int64_t units, const SoftmaxGradSource&, void*, double*);
//   void sample_sums(const double* partials, int64_t per_sample, int64_t batch, double* rows);
//   template <typename loss_t>
//   void reduce(double* rows, int64_t batch, loss_t* loss, Reduction, Normalize, const double* normalizer);
template <class Launcher>
void plan_softmax_forward(Launcher& launch, const SoftmaxProblem& pb, void* loss_map, double* partials,
                          double* rows, void* loss_scalar) {
  const int64_t units = softmax_units(pb), batch = pb.cells.batch;
  const bool f64 = pb.cells.logits_dtype == DType::kFloat64;
  if (units > 0) {
    launch.pairs(f64 ? softmax_kernel_for<Pass::kForward, double>(pb) : softmax_kernel_for<Pass::kForward, float>(pb),
                 pb, units, SoftmaxGradSource{}, loss_map, partials);
    launch.sample_sums(partials, units / batch, batch, rows);
  }
  const Reduction red = pb.cells.params.reduction;
  if (f64) {
    launch.template reduce<double>(rows, batch, static_cast<double*>(loss_scalar), red, pb.normalize,
                                   pb.cells.normalizer);
  } else {
    launch.template reduce<float>(rows, batch, static_cast<float*>(loss_scalar), red, pb.normalize,
                                  pb.cells.normalizer);
  }
}

template <class Launcher>
void plan_softmax_backward(Launcher& launch, const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad) {
  const int64_t units = softmax_units(pb);
  if (units == 0) return;
  const bool f64 = pb.cells.logits_dtype == DType::kFloat64;
  launch.pairs(f64 ? softmax_kernel_for<Pass::kBackward, double>(pb) : softmax_kernel_for<Pass::kBackward, float>(pb),
               pb, units, src, grad, nullptr);
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
