#pragma once
// The tile-pair kernels: one thread block per tile pair (tile (I, J), I <= J, with
// its mirror (J, I)), 256 threads, each thread four consecutive cells of one row
// of the 32 x 32 tile.
//
// Both tiles are read once and coalesced, four cells a thread in one wide load
// where the rows allow it (cell_access.cuh): the own tile straight from global
// memory, the mirror through shared memory with padded rows (33 columns, no
// bank conflicts either way), so that the thread holding cell (i, j) also
// holds x_ji. Results for the mirror cells go back through shared memory and
// are written as rows. A diagonal tile pairs with itself, sees every cell pair
// twice and halves it.
//
// The math is focal_math.h's, in fp32 (fp64 for float64 logits). Sums are
// reduced per block in a fixed order into per-tile-pair partials and summed
// by a second, single-block kernel in a fixed order (finalize_kernel.cuh): no
// float atomics, the same inputs give bitwise the same loss. The backward pass
// reads the incoming gradient and the statistics from device memory: no host
// sync. Device code only: launch.cu and tile_pairs_*.cu launch it, and
// tests/cuda_emulator runs it as host code.
#include <cstdint>

#include "../focal_math.h"
#include "../tiles.h"
#include "cell_access.cuh"
#include "launch_plan.h"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int T = kTile;
constexpr int kGroupsPerRow = T / kVec;     // threads per tile row
constexpr int kThreads = T * kGroupsPerRow;  // one row group of kVec cells each

__device__ __forceinline__ int64_t offset(const MapView& v, int64_t base, int64_t i, int64_t j) {
  return base + i * v.row_stride + j * v.col_stride;
}

// The mirror tile and its results, in shared memory.
template <typename acc_t>
struct Shared {
  acc_t x[T][T + 1];     // mirror logits, later the mirror cells' results
  acc_t t[T][T + 1];     // mirror targets (smoothed)
  acc_t g[T][T + 1];     // mirror incoming gradient (backward, reduction none)
  uint8_t m[T][T + 1];   // mirror mask
  acc_t partial[kThreads / 32][kNumStats];
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

// One tile pair. Forward: the block's four sums go to partials[item] and the
// loss map to `out` if asked. Backward: writes the gradient to `out`.
template <Pass P, Mode M, GammaKind G, typename acc_t>
__device__ __forceinline__ void tile_pair(const Problem& pb, int64_t item, const Scales<acc_t>& sc,
                                          const MapView& grad_map, const WideAccess& wide, void* out,
                                          double* partials, Shared<acc_t>& sh) {
  const TileGeometry g = tile_geometry(pb, item);
  const Params& prm = pb.params;
  const int r = threadIdx.x / kGroupsPerRow;          // this thread's row of a tile
  const int c0 = (threadIdx.x % kGroupsPerRow) * kVec;  // and its first column
  const bool grad_in = P == Pass::kBackward && sc.per_cell;
  const int64_t xb0 = pb.logits.batch_offset(g.b);
  const int64_t tb0 = pb.target.batch_offset(g.b);
  const int64_t mb0 = pb.has_mask ? pb.mask.batch_offset(g.b) : 0;
  const int64_t gb0 = grad_in ? grad_map.batch_offset(g.b) : 0;
  const TargetSmoothing<acc_t> smooth(prm.label_smoothing);

  // Cells (i, j .. j + kVec - 1) of a row, of which n exist: logits, smoothed
  // targets, mask (true without one) and, in backward for reduction none, the incoming gradient.
  struct Cells {
    acc_t x[kVec], t[kVec], g[kVec];
    bool m[kVec];
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
      c.t[q] = smooth(c.t[q]);
      c.m[q] = !pb.has_mask || m[q] != acc_t(0);
    }
  };

  // 1. The mirror tile into shared memory: this thread's row r of it, cells
  // (j0 + r, i0 + c0 + q). In fp32 the own cells (i0 + r, j0 + c0 + q) are
  // loaded before the barrier too, so that both tiles' loads are in flight
  // together. On sm_90 that costs no occupancy: forward 72 registers either
  // way (3 blocks an SM), backward 108 instead of 88 (2 blocks either way).
  // In fp64 it would spill; there the own cells reuse the mirror's registers.
  constexpr bool overlap = sizeof(acc_t) == 4;
  Cells cells[overlap ? 2 : 1];
  Cells& mir = cells[0];
  Cells& cur = cells[overlap ? 1 : 0];  // the mirror's registers, once it is in shared memory
  const int n_mir = r < g.cols ? cells_in(c0, g.rows) : 0;
  const int n_own = r < g.rows ? cells_in(c0, g.cols) : 0;
  load_cells(g.j0 + r, g.i0 + c0, n_mir, mir);
  if (overlap) load_cells(g.i0 + r, g.j0 + c0, n_own, cur);
#pragma unroll
  for (int q = 0; q < kVec; ++q) {
    sh.x[r][c0 + q] = mir.x[q];
    sh.t[r][c0 + q] = mir.t[q];
    sh.m[r][c0 + q] = mir.m[q];
    if (grad_in) sh.g[r][c0 + q] = mir.g[q];
  }
  __syncthreads();
  if (!overlap) load_cells(g.i0 + r, g.j0 + c0, n_own, cur);

  // 2. Own cells (i0 + r, j0 + c), c = c0 + q, each with its mirror from shared memory.
  const FocalCoefs<acc_t> coefs(prm);
  const bool with_penalty = prm.symmetry_weight > 0.0;
  const acc_t delta = static_cast<acc_t>(prm.huber_delta);
  const acc_t half_lambda = static_cast<acc_t>(0.5 * prm.symmetry_weight);
  acc_t s_focal = 0, s_cells = 0, s_pen = 0, s_pairs = 0;
  acc_t own[kVec], mirror[kVec];
#pragma unroll
  for (int q = 0; q < kVec; ++q) {
    const int c = c0 + q;
    const int64_t i = g.i0 + r, j = g.j0 + c;
    const acc_t xa = cur.x[q], ta = cur.t[q];
    const bool ma = cur.m[q];
    const acc_t xb = sh.x[c][r], tb = sh.t[c][r];
    const bool mb = sh.m[c][r] != 0;
    const bool ok = q < n_own && admits(i, j, g.len, prm.min_separation);
    acc_t wa = (ok && ma && in_triangle(M, i, j)) ? sc.focal : acc_t(0);
    acc_t wb = (ok && mb && in_triangle(M, j, i)) ? sc.focal : acc_t(0);
    acc_t wp = (with_penalty && ok && ma && mb && i != j) ? sc.penalty : acc_t(0);
    if (grad_in) {
      const acc_t ga = cur.g[q], gb = sh.g[c][r];
      wa *= ga;
      wb *= gb;
      wp *= acc_t(0.5) * (ga + gb);
    }
    acc_t la, lb, da, db;
    pair_focal<M, G>(xa, xb, ta, tb, wa, wb, coefs, la, lb, da, db);
    acc_t rho = 0, drho = 0;
    if (with_penalty) penalty_term(xa - xb, prm.penalty, delta, rho, drho);
    if (P == Pass::kForward) {
      s_focal += la + lb;
      s_cells += wa + wb;
      s_pen += wp * rho;
      s_pairs += wp;
      own[q] = la + half_lambda * wp * rho;
      mirror[q] = lb + half_lambda * wp * rho;
    } else {
      own[q] = da + wp * drho;
      mirror[q] = db - wp * drho;
    }
  }

  // 3. Write back, as rows: own cells directly, mirror cells through shared memory.
  if (out != nullptr) {
    // No barrier before: each thread overwrites exactly the sh.x cells it read in step 2.
#pragma unroll
    for (int q = 0; q < kVec; ++q) sh.x[c0 + q][r] = mirror[q];
    __syncthreads();
    // sh.x[r][c] now belongs to cell (j0 + r, i0 + c).
    acc_t mirror_row[kVec];
#pragma unroll
    for (int q = 0; q < kVec; ++q) mirror_row[q] = sh.x[r][c0 + q];
    const int64_t own_at = (g.b * pb.L + g.i0 + r) * pb.L + g.j0 + c0;
    if (g.diagonal) {  // both halves of the pair are this very cell
#pragma unroll
      for (int q = 0; q < kVec; ++q) own[q] = acc_t(0.5) * (own[q] + mirror_row[q]);
      store_row4(out, pb.logits_dtype, own_at, wide.out, n_own, own);
    } else {
      store_row4(out, pb.logits_dtype, own_at, wide.out, n_own, own);
      store_row4(out, pb.logits_dtype, (g.b * pb.L + g.j0 + r) * pb.L + g.i0 + c0, wide.out, n_mir, mirror_row);
    }
  }

  // 4. Forward: the block's sums, in a fixed order (warp shuffles, then warps in turn).
  if (P == Pass::kForward) {
    acc_t v[kNumStats] = {s_focal, s_cells, s_pen, s_pairs};
#pragma unroll
    for (int s = 0; s < kNumStats; ++s)
      for (int o = 16; o > 0; o >>= 1) v[s] += __shfl_down_sync(0xffffffffu, v[s], o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0)
#pragma unroll
      for (int s = 0; s < kNumStats; ++s) sh.partial[warp][s] = v[s];
    __syncthreads();
    if (threadIdx.x == 0) {
      const double w = g.diagonal ? 0.5 : 1.0;
      for (int s = 0; s < kNumStats; ++s) {
        double total = 0;
        for (int wi = 0; wi < kThreads / 32; ++wi) total += static_cast<double>(sh.partial[wi][s]);
        SYMFOCAL_CHECK_GLOBAL_ACCESS(&partials[item * kNumStats + s], sizeof(double), 1);
        partials[item * kNumStats + s] = w * total;
      }
    }
  }
  __syncthreads();  // shared memory is reused by the next item
}

using TilePairKernel = void (*)(Problem, int64_t, GradSource, WideAccess, void*, double*);

// Two blocks per SM at least in fp32 (at most 128 registers a thread); fp64,
// for tests and gradcheck rather than speed, gets the registers it needs.
template <typename acc_t>
constexpr int kMinBlocksPerSM = sizeof(acc_t) == 4 ? 2 : 1;

template <Pass P, Mode M, typename acc_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM<acc_t>) tile_pair_kernel(Problem pb, int64_t items, GradSource src,
                                                                WideAccess wide, void* out, double* partials) {
  __shared__ Shared<acc_t> sh;
  Scales<acc_t> sc{acc_t(1), acc_t(1), false};
  if (P == Pass::kBackward) {
    if (pb.params.reduction == Reduction::kNone) {
      sc.penalty = static_cast<acc_t>(pb.params.symmetry_weight);
      sc.per_cell = true;
    } else {
      const double gv = pb.logits_dtype == DType::kFloat64 ? *static_cast<const double*>(src.grad_scalar)
                                                          : *static_cast<const float*>(src.grad_scalar);
      double fs, ps;
      reduction_scales(src.stats, pb.params.reduction, pb.params.symmetry_weight, fs, ps);
      sc.focal = static_cast<acc_t>(fs * gv);
      sc.penalty = static_cast<acc_t>(ps * gv);
    }
  }
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    switch (pb.params.gamma_kind) {
      case GammaKind::kZero: tile_pair<P, M, GammaKind::kZero>(pb, item, sc, src.grad_map, wide, out, partials, sh); break;
      case GammaKind::kOne: tile_pair<P, M, GammaKind::kOne>(pb, item, sc, src.grad_map, wide, out, partials, sh); break;
      case GammaKind::kTwo: tile_pair<P, M, GammaKind::kTwo>(pb, item, sc, src.grad_map, wide, out, partials, sh); break;
      default: tile_pair<P, M, GammaKind::kGeneral>(pb, item, sc, src.grad_map, wide, out, partials, sh); break;
    }
  }
}

// The kernel for a mode (a template parameter, so that each mode's cell rules fold away).
template <Pass P, typename acc_t>
TilePairKernel tile_pair_kernel_for(Mode mode) {
  switch (mode) {
    case Mode::kNone: return &tile_pair_kernel<P, Mode::kNone, acc_t>;
    case Mode::kPair: return &tile_pair_kernel<P, Mode::kPair, acc_t>;
    case Mode::kUpper: return &tile_pair_kernel<P, Mode::kUpper, acc_t>;
    default: return &tile_pair_kernel<P, Mode::kAverage, acc_t>;
  }
}

// Which of a call's accesses can be wide: decided on the host, once per call.
// The output (loss map or gradient) is a fresh contiguous [..., L, L] tensor.
inline WideAccess wide_access(const Problem& pb, const GradSource& src, const void* out) {
  WideAccess w;
  w.logits = allows_wide_rows(pb.logits, pb.logits_dtype);
  w.target = allows_wide_rows(pb.target, pb.target_dtype);
  w.mask = pb.has_mask && allows_wide_rows(pb.mask, pb.mask_dtype);
  w.grad = allows_wide_rows(src.grad_map, pb.logits_dtype);
  w.out = out != nullptr && pb.L % kVec == 0 &&
          reinterpret_cast<uintptr_t>(out) % static_cast<uintptr_t>(wide_alignment(pb.logits_dtype)) == 0;
  return w;
}

inline unsigned grid_for(int64_t items) {
  constexpr int64_t kMaxGrid = 2147483647;
  return static_cast<unsigned>(items < kMaxGrid ? items : kMaxGrid);
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
