#pragma once
// The tile-pair kernels: one thread block per tile pair (tile (I, J), I <= J, with
// its mirror (J, I)), 32 x 8 threads, each thread 4 cells of the 32 x 32 tile.
//
// Both tiles are read once and coalesced: the own tile straight from global
// memory, the mirror through shared memory with padded rows (33 columns), so
// that the thread holding cell (i, j) also holds x_ji. Results for the mirror
// cells go back through shared memory and are written as coalesced rows. A
// diagonal tile pairs with itself, sees every cell pair twice and halves it.
//
// The math is focal_math.h's, in fp32 (fp64 for float64 logits). Sums are
// reduced per block in a fixed order into per-tile-pair partials and summed
// by a second, single-block kernel in a fixed order: no float atomics, the
// same inputs give bitwise the same loss. The backward pass reads the
// incoming gradient and the statistics from device memory: no host sync.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../focal_math.h"
#include "../tiles.h"
#include "launch.h"

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int T = kTile;
constexpr int kRowsPerPass = 8;               // blockDim.y
constexpr int kPerThread = T / kRowsPerPass;  // cells per thread
constexpr int kThreads = T * kRowsPerPass;

template <typename acc_t>
__device__ __forceinline__ acc_t load_as(const void* p, DType dt, int64_t off) {
  switch (dt) {
    case DType::kFloat16: return static_cast<acc_t>(__half2float(static_cast<const __half*>(p)[off]));
    case DType::kBFloat16:
      return static_cast<acc_t>(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[off]));
    case DType::kFloat32: return static_cast<acc_t>(static_cast<const float*>(p)[off]);
    case DType::kFloat64: return static_cast<acc_t>(static_cast<const double*>(p)[off]);
    default: return static_cast<acc_t>(static_cast<const uint8_t*>(p)[off]);  // bool, uint8
  }
}

template <typename acc_t>
__device__ __forceinline__ void store_as(void* p, DType dt, int64_t off, acc_t v) {
  switch (dt) {
    case DType::kFloat16: static_cast<__half*>(p)[off] = __float2half(static_cast<float>(v)); break;
    case DType::kBFloat16:
      static_cast<__nv_bfloat16*>(p)[off] = __float2bfloat16(static_cast<float>(v));
      break;
    case DType::kFloat32: static_cast<float*>(p)[off] = static_cast<float>(v); break;
    default: static_cast<double*>(p)[off] = static_cast<double>(v); break;
  }
}

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

enum class Pass { kForward, kBackward };

// One tile pair. Forward: returns the block's four sums through `sums`
// (thread 0) and writes the loss map if asked. Backward: writes grad.
template <Pass P, Mode M, GammaKind G, typename acc_t>
__device__ __forceinline__ void tile_pair(const Problem& pb, int64_t item, const Scales<acc_t>& sc, const MapView* grad_map,
                          void* out, double* partials, Shared<acc_t>& sh) {
  const TileGeometry g = tile_geometry(pb, item);
  const Params& prm = pb.params;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t xb0 = pb.logits.batch_offset(g.b);
  const int64_t tb0 = pb.target.batch_offset(g.b);
  const int64_t mb0 = pb.has_mask ? pb.mask.batch_offset(g.b) : 0;
  const int64_t gb0 = sc.per_cell ? grad_map->batch_offset(g.b) : 0;
  const acc_t keep = static_cast<acc_t>(1.0 - prm.label_smoothing);
  const acc_t shift = static_cast<acc_t>(0.5 * prm.label_smoothing);

  // 1. The mirror tile into shared memory: row rr of tile (J, I) is x(j0 + rr, i0 + tx).
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int rr = ty + kRowsPerPass * k;
    const bool in = rr < g.cols && tx < g.rows;
    const int64_t j = g.j0 + rr, i = g.i0 + tx;
    acc_t xv = 0, tv = 0, gv = 0;
    uint8_t mv = 0;
    if (in) {
      xv = load_as<acc_t>(pb.logits.data, pb.logits_dtype, offset(pb.logits, xb0, j, i));
      tv = load_as<acc_t>(pb.target.data, pb.target_dtype, offset(pb.target, tb0, j, i)) * keep + shift;
      mv = pb.has_mask ? static_cast<const uint8_t*>(pb.mask.data)[offset(pb.mask, mb0, j, i)] != 0 : 1;
      if (sc.per_cell) gv = load_as<acc_t>(grad_map->data, pb.logits_dtype, offset(*grad_map, gb0, j, i));
    }
    sh.x[rr][tx] = xv;
    sh.t[rr][tx] = tv;
    sh.m[rr][tx] = mv;
    if (P == Pass::kBackward && sc.per_cell) sh.g[rr][tx] = gv;
  }
  __syncthreads();

  // 2. Own cells (i0 + r, j0 + tx), r = ty + 8k, each with its mirror from shared memory.
  const FocalCoefs<acc_t> coefs(prm);
  const bool with_penalty = prm.symmetry_weight > 0.0;
  const acc_t delta = static_cast<acc_t>(prm.huber_delta);
  const acc_t half_lambda = static_cast<acc_t>(0.5 * prm.symmetry_weight);
  acc_t s_focal = 0, s_cells = 0, s_pen = 0, s_pairs = 0;
  acc_t own[kPerThread], mirror[kPerThread];
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int r = ty + kRowsPerPass * k, c = tx;
    const int64_t i = g.i0 + r, j = g.j0 + c;
    const bool in = r < g.rows && c < g.cols;
    acc_t xa = 0, ta = 0, ga_in = 0;
    bool ma = false;
    if (in) {
      xa = load_as<acc_t>(pb.logits.data, pb.logits_dtype, offset(pb.logits, xb0, i, j));
      ta = load_as<acc_t>(pb.target.data, pb.target_dtype, offset(pb.target, tb0, i, j)) * keep + shift;
      ma = pb.has_mask ? static_cast<const uint8_t*>(pb.mask.data)[offset(pb.mask, mb0, i, j)] != 0 : true;
      if (P == Pass::kBackward && sc.per_cell)
        ga_in = load_as<acc_t>(grad_map->data, pb.logits_dtype, offset(*grad_map, gb0, i, j));
    }
    const acc_t xb = sh.x[c][r], tb = sh.t[c][r];
    const bool mb = sh.m[c][r] != 0;
    const bool ok = in && admits(i, j, g.len, prm.min_separation);
    acc_t wa = (ok && ma && in_triangle(M, i, j)) ? sc.focal : acc_t(0);
    acc_t wb = (ok && mb && in_triangle(M, j, i)) ? sc.focal : acc_t(0);
    acc_t wp = (with_penalty && ok && ma && mb && i != j) ? sc.penalty : acc_t(0);
    if (P == Pass::kBackward && sc.per_cell) {
      const acc_t gb_in = sh.g[c][r];
      wa *= ga_in;
      wb *= gb_in;
      wp *= acc_t(0.5) * (ga_in + gb_in);
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
      own[k] = la + half_lambda * wp * rho;
      mirror[k] = lb + half_lambda * wp * rho;
    } else {
      own[k] = da + wp * drho;
      mirror[k] = db - wp * drho;
    }
  }

  // 3. Write back: own cells directly, mirror cells through shared memory.
  if (out != nullptr) {
    __syncthreads();  // every thread is done reading sh.x
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) sh.x[tx][ty + kRowsPerPass * k] = mirror[k];
    __syncthreads();
    const int64_t L = pb.L;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int r = ty + kRowsPerPass * k;
      // sh.x[r][tx] now belongs to cell (j0 + r, i0 + tx).
      if (g.diagonal) {
        if (r < g.rows && tx < g.cols)
          store_as(out, pb.logits_dtype, (g.b * L + g.i0 + r) * L + g.j0 + tx,
                   acc_t(0.5) * (own[k] + sh.x[r][tx]));
      } else {
        if (r < g.rows && tx < g.cols) store_as(out, pb.logits_dtype, (g.b * L + g.i0 + r) * L + g.j0 + tx, own[k]);
        if (r < g.cols && tx < g.rows)
          store_as(out, pb.logits_dtype, (g.b * L + g.j0 + r) * L + g.i0 + tx, sh.x[r][tx]);
      }
    }
  }

  // 4. Forward: the block's sums, in a fixed order (warp shuffles, then warps in turn).
  if (P == Pass::kForward) {
    acc_t v[kNumStats] = {s_focal, s_cells, s_pen, s_pairs};
#pragma unroll
    for (int s = 0; s < kNumStats; ++s)
      for (int o = 16; o > 0; o >>= 1) v[s] += __shfl_down_sync(0xffffffffu, v[s], o);
    const int warp = (ty * T + tx) / 32, lane = (ty * T + tx) % 32;
    if (lane == 0)
#pragma unroll
      for (int s = 0; s < kNumStats; ++s) sh.partial[warp][s] = v[s];
    __syncthreads();
    if (tx == 0 && ty == 0) {
      const double w = g.diagonal ? 0.5 : 1.0;
      for (int s = 0; s < kNumStats; ++s) {
        double total = 0;
        for (int wi = 0; wi < kThreads / 32; ++wi) total += static_cast<double>(sh.partial[wi][s]);
        partials[item * kNumStats + s] = w * total;
      }
    }
  }
  __syncthreads();  // shared memory is reused by the next item
}

template <Pass P, Mode M, typename acc_t>
__global__ void __launch_bounds__(kThreads, 2) tile_pair_kernel(Problem pb, int64_t items, GradSource src,
                                                             void* out, double* partials) {
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
      case GammaKind::kZero: tile_pair<P, M, GammaKind::kZero>(pb, item, sc, &src.grad_map, out, partials, sh); break;
      case GammaKind::kOne: tile_pair<P, M, GammaKind::kOne>(pb, item, sc, &src.grad_map, out, partials, sh); break;
      case GammaKind::kTwo: tile_pair<P, M, GammaKind::kTwo>(pb, item, sc, &src.grad_map, out, partials, sh); break;
      default: tile_pair<P, M, GammaKind::kGeneral>(pb, item, sc, &src.grad_map, out, partials, sh); break;
    }
  }
}

inline unsigned grid_for(int64_t items) {
  constexpr int64_t kMaxGrid = 2147483647;
  return static_cast<unsigned>(items < kMaxGrid ? items : kMaxGrid);
}

template <Pass P, typename acc_t>
void launch_tile_pairs(const Problem& pb, int64_t items, const GradSource& src, void* out, double* partials,
                       cudaStream_t stream) {
  const dim3 block(T, kRowsPerPass);
  const unsigned grid = grid_for(items);
  switch (pb.params.mode) {
    case Mode::kNone: tile_pair_kernel<P, Mode::kNone, acc_t><<<grid, block, 0, stream>>>(pb, items, src, out, partials); break;
    case Mode::kAverage: tile_pair_kernel<P, Mode::kAverage, acc_t><<<grid, block, 0, stream>>>(pb, items, src, out, partials); break;
    case Mode::kPair: tile_pair_kernel<P, Mode::kPair, acc_t><<<grid, block, 0, stream>>>(pb, items, src, out, partials); break;
    case Mode::kUpper: tile_pair_kernel<P, Mode::kUpper, acc_t><<<grid, block, 0, stream>>>(pb, items, src, out, partials); break;
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal

// Each (pass, accumulation type) is compiled in its own file (tile_pairs_*.cu)
// so that the build runs them in parallel; launch.cu only links to them.
#define SYMFOCAL_TILE_PAIRS(P, ACC)                                                                 \
  template void symfocal::cuda::detail::launch_tile_pairs<symfocal::cuda::detail::Pass::P, ACC>( \
      const symfocal::Problem&, int64_t, const symfocal::GradSource&, void*, double*, cudaStream_t)
