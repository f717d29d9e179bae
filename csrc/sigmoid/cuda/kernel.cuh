#pragma once
// The tile-pair kernels: one thread block per tile pair (tile (I, J), I <= J, with
// its mirror (J, I)), 256 threads by default, each thread four consecutive
// cells of one row of the 32 x 32 tile (a Shape of variants.h may give each
// thread two such groups instead).
//
// Both tiles are read once and coalesced, four cells a thread in one wide load
// where the rows allow it, two 2-cell loads where they allow only that
// (cell_access.cuh): the own tile straight from global memory, the mirror
// through shared memory with padded rows (33 columns, no bank conflicts
// either way), so that the thread holding cell (i, j) also holds x_ji.
// Results for the mirror cells go back through shared memory and are written
// as rows. A diagonal tile pairs with itself, sees every cell pair twice and
// halves it.
//
// The math is sigmoid/math.h's, in fp32 (fp64 for float64 logits). Sums are
// reduced per block in a fixed order into per-tile-pair partials and summed
// by finalize_kernel.cuh in a fixed order: no float atomics, the same inputs
// give bitwise the same loss. The backward pass reads the incoming gradient
// and the statistics from device memory: no host sync. Device code only:
// launch.cu and tile_pairs_*.cu launch it, and tests/cuda_emulator runs it
// as host code.
#include <cstdint>

#include "sigmoid/math.h"
#include "engine/tiles.h"
#include "engine/cuda/cell_access.cuh"
#include "sigmoid/cuda/launch_plan.h"
#include "sigmoid/cuda/variants.h"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int T = kTile;
constexpr int kGroupsPerRow = T / kVec;  // groups of kVec cells in a tile row

__device__ __forceinline__ int64_t offset(const MapView& v, int64_t base, int64_t i, int64_t j) {
  return base + i * v.row_stride + j * v.col_stride;
}

// The mirror tile and its results, in shared memory.
template <typename acc_t, int Threads>
struct Shared {
  acc_t x[T][T + 1];     // mirror logits, later the mirror cells' results
  acc_t t[T][T + 1];     // mirror targets (smoothed)
  acc_t g[T][T + 1];     // mirror incoming gradient (backward, reduction none)
  acc_t u[T][T + 1];     // mirror weight map values (with a weight map)
  uint8_t m[T][T + 1];   // mirror mask (and ignore_index)
  acc_t partial[Threads / 32][kNumPartials];
};

// What a block needs to know of the call, read once per block.
template <typename acc_t>
struct Scales {
  acc_t focal, penalty;  // per unit weight of a focal term / of rho(pair)
  bool per_cell;         // reduction none in backward: times the incoming gradient map
};

// How many of the kVec cells from column c0 of a row exist, for `width` columns.
__device__ __forceinline__ int cells_in(int c0, int width) {
  const int n = width - c0;
  return n < 0 ? 0 : (n > kVec ? kVec : n);
}

// One tile pair. Forward: the block's sums (Stat) go to partials[item] and the
// loss map to `out` if asked. Backward: writes the gradient to `out`.
template <Pass P, Mode M, GammaKind G, class Shape, typename acc_t>
__device__ __forceinline__ void tile_pair(const Problem& pb, int64_t item, const Scales<acc_t>& sc,
                                          const MapView& grad_map, const WideAccess& wide, void* out,
                                          double* partials, Shared<acc_t, Shape::kThreads>& sh) {
  constexpr int kThreads = Shape::kThreads;
  constexpr int kGroups = T * kGroupsPerRow / kThreads;  // groups of kVec cells a thread
  const TileGeometry g = tile_geometry(pb, item);
  const Params& prm = pb.params;
  // This thread's groups: row r[h] of a tile, columns c0[h] .. c0[h] + kVec - 1.
  int r[kGroups], c0[kGroups];
#pragma unroll
  for (int h = 0; h < kGroups; ++h) {
    const int group = threadIdx.x + h * kThreads;
    r[h] = group / kGroupsPerRow;
    c0[h] = (group % kGroupsPerRow) * kVec;
  }
  const bool grad_in = P == Pass::kBackward && sc.per_cell;
  const int64_t xb0 = pb.logits.batch_offset(g.b);
  const int64_t tb0 = pb.target.batch_offset(g.b);
  const int64_t mb0 = pb.has_mask ? pb.mask.batch_offset(g.b) : 0;
  const int64_t ub0 = pb.has_weight ? pb.weight.batch_offset(g.b) : 0;
  const DType weight_dtype = sizeof(acc_t) == 8 ? DType::kFloat64 : DType::kFloat32;
  const int64_t gb0 = grad_in ? grad_map.batch_offset(g.b) : 0;
  const TargetSmoothing<acc_t> smooth(prm.label_smoothing);

  // Cells (i, j .. j + kVec - 1) of a row, of which n exist: logits, smoothed
  // targets, mask (true without one; false where the target is ignore_index) and, in backward for
  // reduction none, the incoming gradient. (The weight map's values are read apart, load_weights.)
  struct Cells {
    acc_t x[kVec], t[kVec], g[kVec];
    bool m[kVec];
  };
  // The weight map's values of cells (i, j .. j + kVec - 1), of which n exist; read where they are
  // used, not with the other inputs, so that the registers a tile's loads keep in flight stay those
  // of a call without a weight map (with them, nvcc 13.0 spilled on sm_90 in both passes).
  auto load_weights = [&](int64_t i, int64_t j, int n, acc_t (&u)[kVec]) {
    load_row4(pb.weight.data, weight_dtype, offset(pb.weight, ub0, i, j), pb.weight.col_stride, wide.weight, n, u);
  };
  auto load_cells = [&](int64_t i, int64_t j, int n, Cells& c) {
    load_row4(pb.logits.data, pb.logits_dtype, offset(pb.logits, xb0, i, j), pb.logits.col_stride, wide.logits, n,
              c.x);
    load_row4(pb.target.data, pb.target_dtype, offset(pb.target, tb0, i, j), pb.target.col_stride, wide.target, n,
              c.t);
    acc_t m[kVec] = {};
    if (pb.has_mask) {
      load_row4(pb.mask.data, pb.mask_dtype, offset(pb.mask, mb0, i, j), pb.mask.col_stride, wide.mask, n, m);
    }
    if (grad_in)
      load_row4(grad_map.data, pb.logits_dtype, offset(grad_map, gb0, i, j), grad_map.col_stride, wide.grad, n, c.g);
#pragma unroll
    for (int q = 0; q < kVec; ++q) {
      const acc_t keep = drop_ignored(prm, c.t[q]);
      c.t[q] = smooth(c.t[q]);
      c.m[q] = (!pb.has_mask || m[q] != acc_t(0)) && keep != acc_t(0);
    }
  };

  // 1. The mirror tile into shared memory: row r of it, cells (j0 + r,
  // i0 + c0 + q). In fp32 the own cells (i0 + r, j0 + c0 + q) are loaded
  // before the barrier too, so that both tiles' loads are in flight together
  // (in backward unless the Shape says otherwise). On sm_90 (nvcc 13.0) that
  // costs no occupancy in the default shape: forward 78-80 registers (3 blocks
  // an SM), backward 118 against about 100 without (2 blocks either way); the
  // variant sweep (serial-loads) times the difference. In fp64 it would
  // spill; there the own cells reuse the mirror's registers.
  constexpr bool overlap = sizeof(acc_t) == 4 && (P == Pass::kForward || Shape::kOverlapBackward);
  Cells cells[overlap ? 2 : 1][kGroups];
  Cells(&mir)[kGroups] = cells[0];
  Cells(&cur)[kGroups] = cells[overlap ? 1 : 0];  // the mirror's registers, once it is in shared memory
  int n_mir[kGroups], n_own[kGroups];
#pragma unroll
  for (int h = 0; h < kGroups; ++h) {
    n_mir[h] = r[h] < g.cols ? cells_in(c0[h], g.rows) : 0;
    n_own[h] = r[h] < g.rows ? cells_in(c0[h], g.cols) : 0;
    load_cells(g.j0 + r[h], g.i0 + c0[h], n_mir[h], mir[h]);
    if (overlap) load_cells(g.i0 + r[h], g.j0 + c0[h], n_own[h], cur[h]);
  }
#pragma unroll
  for (int h = 0; h < kGroups; ++h)
#pragma unroll
    for (int q = 0; q < kVec; ++q) {
      sh.x[r[h]][c0[h] + q] = mir[h].x[q];
      sh.t[r[h]][c0[h] + q] = mir[h].t[q];
      sh.m[r[h]][c0[h] + q] = mir[h].m[q];
      if (grad_in) sh.g[r[h]][c0[h] + q] = mir[h].g[q];
    }
  if (pb.has_weight)
#pragma unroll
    for (int h = 0; h < kGroups; ++h) {
      acc_t u[kVec];
      load_weights(g.j0 + r[h], g.i0 + c0[h], n_mir[h], u);
#pragma unroll
      for (int q = 0; q < kVec; ++q) sh.u[r[h]][c0[h] + q] = u[q];
    }
  __syncthreads();
  if (!overlap)
#pragma unroll
    for (int h = 0; h < kGroups; ++h) load_cells(g.i0 + r[h], g.j0 + c0[h], n_own[h], cur[h]);

  // 2. Own cells (i0 + r, j0 + c), c = c0 + q, each with its mirror from shared memory.
  const FocalCoefs<acc_t> coefs(params_of_sample(pb, g.b));
  const bool with_penalty = prm.symmetry_weight > 0.0;
  const acc_t delta = static_cast<acc_t>(prm.huber_delta);
  const acc_t half_lambda = static_cast<acc_t>(0.5 * prm.symmetry_weight);
  acc_t s_focal = 0, s_cells = 0, s_pen = 0, s_pairs = 0, s_target = 0;
  acc_t own[kGroups][kVec], mirror[kGroups][kVec];
#pragma unroll
  for (int h = 0; h < kGroups; ++h) {
    acc_t u_own[kVec];
    if (pb.has_weight) load_weights(g.i0 + r[h], g.j0 + c0[h], n_own[h], u_own);
#pragma unroll
    for (int q = 0; q < kVec; ++q) {
      const int c = c0[h] + q;
      const int64_t i = g.i0 + r[h], j = g.j0 + c;
      const acc_t xa = cur[h].x[q], ta = cur[h].t[q];
      const bool ma = cur[h].m[q];
      const acc_t xb = sh.x[c][r[h]], tb = sh.t[c][r[h]];
      const bool mb = sh.m[c][r[h]] != 0;
      const bool ok = q < n_own[h] && admits(i, j, g.len, prm.min_separation);
      acc_t wa = (ok && ma && in_triangle(M, i, j)) ? sc.focal : acc_t(0);
      acc_t wb = (ok && mb && in_triangle(M, j, i)) ? sc.focal : acc_t(0);
      acc_t wp = (with_penalty && ok && ma && mb && i != j) ? sc.penalty : acc_t(0);
      if (grad_in) {
        const acc_t ga = cur[h].g[q], gb = sh.g[c][r[h]];
        wa *= ga;
        wb *= gb;
        wp *= acc_t(0.5) * (ga + gb);
      }
      if (P == Pass::kForward) s_target += wa * ta + wb * tb;
      // The weight map multiplies each cell's term, not its count.
      const acc_t fa = pb.has_weight ? wa * u_own[q] : wa, fb = pb.has_weight ? wb * sh.u[c][r[h]] : wb;
      acc_t la, lb, da, db;
      pair_focal<M, G>(xa, xb, ta, tb, fa, fb, coefs, la, lb, da, db);
      acc_t rho = 0, drho = 0;
      if (with_penalty) {  // weighted: a pair that does not count is not read
        penalty_term(xa - xb, prm.penalty, delta, rho, drho);
        rho = weighted(wp, rho);
        drho = weighted(wp, drho);
      }
      if (P == Pass::kForward) {
        s_focal += la + lb;
        s_cells += wa + wb;
        s_pen += rho;
        s_pairs += wp;
        own[h][q] = la + half_lambda * rho;
        mirror[h][q] = lb + half_lambda * rho;
      } else {
        own[h][q] = da + drho;
        mirror[h][q] = db - drho;
      }
    }
  }

  // 3. Write back, as rows: own cells directly, mirror cells through shared memory.
  if (out != nullptr) {
    // No barrier before: each thread overwrites exactly the sh.x cells it read in step 2.
#pragma unroll
    for (int h = 0; h < kGroups; ++h)
#pragma unroll
      for (int q = 0; q < kVec; ++q) sh.x[c0[h] + q][r[h]] = mirror[h][q];
    __syncthreads();
    // sh.x[r][c] now belongs to cell (j0 + r, i0 + c).
#pragma unroll
    for (int h = 0; h < kGroups; ++h) {
      acc_t mirror_row[kVec];
#pragma unroll
      for (int q = 0; q < kVec; ++q) mirror_row[q] = sh.x[r[h]][c0[h] + q];
      const int64_t own_at = (g.b * pb.L + g.i0 + r[h]) * pb.L + g.j0 + c0[h];
      if (g.diagonal) {  // both halves of the pair are this very cell
#pragma unroll
        for (int q = 0; q < kVec; ++q) own[h][q] = acc_t(0.5) * (own[h][q] + mirror_row[q]);
        store_row4(out, pb.logits_dtype, own_at, wide.out, n_own[h], own[h]);
      } else {
        store_row4(out, pb.logits_dtype, own_at, wide.out, n_own[h], own[h]);
        store_row4(out, pb.logits_dtype, (g.b * pb.L + g.j0 + r[h]) * pb.L + g.i0 + c0[h], wide.out, n_mir[h],
                   mirror_row);
      }
    }
  }

  if (P == Pass::kForward) {
    // 4. The block's sums, in a fixed order (warp shuffles, then warps in turn).
    acc_t v[kNumPartials] = {s_focal, s_cells, s_pen, s_pairs, s_target};
#pragma unroll
    for (int s = 0; s < kNumPartials; ++s)
      for (int o = 16; o > 0; o >>= 1) v[s] += __shfl_down_sync(0xffffffffu, v[s], o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0)
#pragma unroll
      for (int s = 0; s < kNumPartials; ++s) sh.partial[warp][s] = v[s];
    __syncthreads();
    if (threadIdx.x == 0) {
      const double w = g.diagonal ? 0.5 : 1.0;
      for (int s = 0; s < kNumPartials; ++s) {
        double total = 0;
        for (int wi = 0; wi < kThreads / 32; ++wi) total += static_cast<double>(sh.partial[wi][s]);
        SYMFOCAL_CHECK_GLOBAL_ACCESS(&partials[item * kNumPartials + s], sizeof(double), 1);
        partials[item * kNumPartials + s] = w * total;
      }
    }
  }
  // No barrier at the end of an item, in either pass. Every read of another
  // thread's shared cells (step 2's mirror reads, step 4's sh.partial) comes
  // before a barrier (step 3's, which backward always has, or step 4's) that every thread passes before the next item writes
  // there: step 3 reads back only the cells this very thread writes in the
  // next item's step 1 (sh.x[r][c0 + q]), the next item's first barrier
  // precedes its transposed writes of step 3, and sh.partial is written again
  // only after that barrier, which thread 0 reaches once it has read it here.
}

using TilePairKernel = void (*)(Problem, int64_t, GradSource, WideAccess, void*, double*);

// At least Shape::kMinBlocks blocks an SM in fp32 (the register cap follows),
// and in forward at least kMinBlocksForward; fp64, for tests and gradcheck
// rather than speed, gets the registers it needs.
template <Pass P, class Shape, typename acc_t>
constexpr int kMinBlocksPerSM =
    sizeof(acc_t) != 4 ? 1
    : P == Pass::kForward && Shape::kMinBlocksForward > Shape::kMinBlocks ? Shape::kMinBlocksForward
                                                                          : Shape::kMinBlocks;

template <Pass P, Mode M, class Shape, typename acc_t>
__global__ void __launch_bounds__(Shape::kThreads, (kMinBlocksPerSM<P, Shape, acc_t>))
    tile_pair_kernel(Problem pb, int64_t items, GradSource src, WideAccess wide, void* out, double* partials) {
  __shared__ Shared<acc_t, Shape::kThreads> sh;
  SYMFOCAL_SHARED_DECLARED(sh);
  Scales<acc_t> sc{acc_t(1), acc_t(1), false};
  double grad_value = 0.0, penalty_scale = 0.0;
  // With normalize sample each sample's focal terms have their own scale (read per item).
  const bool per_sample = P == Pass::kBackward && pb.params.reduction != Reduction::kNone &&
                          pb.params.normalize == Normalize::kSample;
  if (P == Pass::kBackward) {
    if (pb.params.reduction == Reduction::kNone) {
      sc.penalty = static_cast<acc_t>(pb.params.symmetry_weight);
      sc.per_cell = true;
    } else {
      grad_value = pb.logits_dtype == DType::kFloat64 ? *static_cast<const double*>(src.grad_scalar)
                                                      : *static_cast<const float*>(src.grad_scalar);
      double fs;
      reduction_scales(src.stats, pb.params, 0, fs, penalty_scale);
      sc.focal = static_cast<acc_t>(fs * grad_value);
      sc.penalty = static_cast<acc_t>(penalty_scale * grad_value);
    }
  }
  const int64_t pairs_per_sample = tile_pairs_per_sample(num_tiles(pb.L));
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    if (per_sample) {
      double fs, ps;
      reduction_scales(src.stats, pb.params, item / pairs_per_sample, fs, ps);
      sc.focal = static_cast<acc_t>(fs * grad_value);
    }
    switch (pb.params.gamma_kind) {
      case GammaKind::kZero:
        tile_pair<P, M, GammaKind::kZero, Shape>(pb, item, sc, src.grad_map, wide, out, partials, sh);
        break;
      case GammaKind::kOne:
        tile_pair<P, M, GammaKind::kOne, Shape>(pb, item, sc, src.grad_map, wide, out, partials, sh);
        break;
      case GammaKind::kTwo:
        tile_pair<P, M, GammaKind::kTwo, Shape>(pb, item, sc, src.grad_map, wide, out, partials, sh);
        break;
      default: tile_pair<P, M, GammaKind::kGeneral, Shape>(pb, item, sc, src.grad_map, wide, out, partials, sh); break;
    }
  }
}

// The kernel for a mode (a template parameter, so that each mode's cell rules fold away).
template <Pass P, class Shape, typename acc_t>
TilePairKernel tile_pair_kernel_for(Mode mode) {
  switch (mode) {
    case Mode::kNone: return &tile_pair_kernel<P, Mode::kNone, Shape, acc_t>;
    case Mode::kPair: return &tile_pair_kernel<P, Mode::kPair, Shape, acc_t>;
    case Mode::kUpper: return &tile_pair_kernel<P, Mode::kUpper, Shape, acc_t>;
    default: return &tile_pair_kernel<P, Mode::kAverage, Shape, acc_t>;
  }
}

// Cells per access of each tensor of a call (cell_access.cuh), decided on the
// host once per call; all 1 where `cell_access` asks for it (a variant).
inline WideAccess wide_access(const Problem& pb, const GradSource& src, const void* out, bool cell_access) {
  WideAccess w;
  if (cell_access) return w;
  w.logits = static_cast<int8_t>(access_width(pb.logits, pb.logits_dtype));
  w.target = static_cast<int8_t>(access_width(pb.target, pb.target_dtype));
  w.mask = static_cast<int8_t>(pb.has_mask ? access_width(pb.mask, pb.mask_dtype) : 1);
  w.weight = static_cast<int8_t>(
      pb.has_weight ? access_width(pb.weight, pb.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32)
                    : 1);
  w.grad = static_cast<int8_t>(access_width(src.grad_map, pb.logits_dtype));
  // The output (loss map or gradient) is a fresh contiguous [..., L, L] tensor.
  MapView o;
  o.data = out;
  o.nbatch = 1;
  o.batch_size[0] = pb.batch;
  o.batch_stride[0] = pb.L * pb.L;
  o.row_stride = pb.L;
  o.col_stride = 1;
  w.out = static_cast<int8_t>(access_width(o, pb.logits_dtype));
  return w;
}

inline unsigned grid_for(int64_t items) {
  constexpr int64_t kMaxGrid = 2147483647;
  return static_cast<unsigned>(items < kMaxGrid ? items : kMaxGrid);
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
