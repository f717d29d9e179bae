// The CPU kernels, compiled once per instruction set (kernels_<isa>.cpp set
// CPU_CAPABILITY and the target first; dispatch.cpp picks one at run time).
//
// Modes none and upper without a penalty stream row by row (stream_impl.h). Everything else:
// one work item is a tile pair: tile (I, J), I <= J, and its mirror (J, I).
// Both are gathered into small buffers in the accumulation type, the mirror
// transposed, so that x_ij and x_ji sit at the same index; the math of
// sigmoid/math.h then runs on SIMD vectors over the whole tile. A diagonal
// tile pairs with itself: every unordered cell pair is then seen twice, so
// its results carry weight 1/2.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "engine/tiles.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/prefetch.h"
#include "engine/cpu/visit_dtype.h"
#include "engine/cpu/vec_math.h"

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {

constexpr int T = kTile;
constexpr int TT = kTile * kTile;

template <typename acc_t>
struct alignas(64) TileBuf {
  // xa[r*T + c] = x(i0 + r, j0 + c); xb[r*T + c] = x(j0 + c, i0 + r) (the mirror).
  // After the math, xa / xb hold what is written back to cells (i, j) / (j, i).
  acc_t xa[TT], xb[TT], ta[TT], tb[TT];
  acc_t scratch[TT];  // for transposes
  // Weights: of the focal term of each cell (validity times the scales: what the count sums), and
  // of the penalty of the pair; the weight map's values of the cells (with a weight map only).
  acc_t wa[TT], wb[TT], wp[TT];
  acc_t ua[TT], ub[TT];
};

using Geometry = TileGeometry;

// dst[c * ld_dst + r] = src[r * ld_src + c] over a T x T tile; SIMD 16 x 16
// blocks for float (ATen's transpose_mxn), plain loops otherwise.
template <typename acc_t>
void transpose_tile(const acc_t* src, int64_t ld_src, acc_t* dst, int64_t ld_dst) {
  if constexpr (std::is_same_v<acc_t, float>) {
    for (int r = 0; r < T; r += 16)
      for (int c = 0; c < T; c += 16)
        at::vec::transpose_mxn<float, 16, 16>(src + r * ld_src + c, ld_src, dst + c * ld_dst + r, ld_dst);
  } else {
    for (int r = 0; r < T; ++r)
      for (int c = 0; c < T; ++c) dst[c * ld_dst + r] = src[r * ld_src + c];
  }
}

// out[r*T + c] = v(b, i0 + r, j0 + c), or the mirror v(b, j0 + c, i0 + r);
// zero outside the map so that padding cells stay finite.
template <typename src_t, typename acc_t>
void gather(const MapView& v, const Geometry& g, bool mirror, acc_t* out, acc_t* scratch) {
  const src_t* base = static_cast<const src_t*>(v.data) + v.batch_offset(g.b);
  const int64_t rs = v.row_stride, cs = v.col_stride;
  const bool full = g.rows == T && g.cols == T;
  if constexpr (std::is_same_v<src_t, acc_t>) {
    if (mirror && full && cs == 1) {  // straight from memory, transposed on the way
      transpose_tile(base + g.j0 * rs + g.i0, rs, out, T);
      return;
    }
  }
  // Source rows (contiguous in memory when cs == 1) into `rows`; the mirror
  // is then transposed from the scratch buffer.
  acc_t* rows = mirror ? scratch : out;
  if (!full) std::fill(rows, rows + TT, acc_t(0));
  const int64_t r0 = mirror ? g.j0 : g.i0, c0 = mirror ? g.i0 : g.j0;
  const int nrows = mirror ? g.cols : g.rows, ncols = mirror ? g.rows : g.cols;
  for (int r = 0; r < nrows; ++r) {
    const src_t* __restrict__ row = base + (r0 + r) * rs + c0 * cs;
    acc_t* __restrict__ o = rows + r * T;
    if (cs == 1 && ncols == T) {
      for (int c = 0; c < T; ++c) o[c] = static_cast<acc_t>(row[c]);
    } else {
      for (int c = 0; c < ncols; ++c) o[c] = static_cast<acc_t>(row[c * cs]);
    }
  }
  if (mirror) transpose_tile(scratch, T, out, T);
}

// Starts loading the rows of tile (i0.., j0..) and of its mirror: every
// cache line of each row segment (a 32-cell float row spans two).
template <typename src_t>
void prefetch_tiles(const MapView& v, const Geometry& g) {
  constexpr int kLine = 64;
  const char* base = reinterpret_cast<const char*>(static_cast<const src_t*>(v.data) + v.batch_offset(g.b));
  const int64_t rs = v.row_stride * static_cast<int64_t>(sizeof(src_t));
  const int64_t cs = v.col_stride * static_cast<int64_t>(sizeof(src_t));
  if (cs != static_cast<int64_t>(sizeof(src_t))) {
    for (int r = 0; r < g.rows; ++r) prefetch_line(base + (g.i0 + r) * rs + g.j0 * cs);
    for (int c = 0; c < g.cols; ++c) prefetch_line(base + (g.j0 + c) * rs + g.i0 * cs);
    return;
  }
  const int own_bytes = g.cols * static_cast<int>(sizeof(src_t));
  const int mirror_bytes = g.rows * static_cast<int>(sizeof(src_t));
  for (int r = 0; r < g.rows; ++r)
    for (int b = 0; b < own_bytes; b += kLine) prefetch_line(base + (g.i0 + r) * rs + g.j0 * cs + b);
  for (int c = 0; c < g.cols; ++c)
    for (int b = 0; b < mirror_bytes; b += kLine) prefetch_line(base + (g.j0 + c) * rs + g.i0 * cs + b);
}

template <typename acc_t>
void gather_any(const MapView& v, DType dt, const Geometry& g, bool mirror, acc_t* out, acc_t* scratch) {
  visit_dtype(dt, [&](auto tag) { gather<decltype(tag), acc_t>(v, g, mirror, out, scratch); });
}

// The per-cell scales of the backward pass (1 in the forward pass).
template <typename acc_t>
struct Scales {
  acc_t focal = 1, penalty = 1;
  const MapView* grad_map = nullptr;  // reduction none: per-cell incoming gradient
  DType grad_dtype = DType::kFloat32;
};

// wa, wb, wp from lengths, separation, triangle, mask and ignore_index, times the scales;
// ua, ub from the weight map. Uses ta / tb as scratch, so it runs before the targets are
// gathered. Returns true, and fills nothing, when every weight of the tile pair is just
// the scale (the common case: an interior tile pair, no mask, no ignore_index or weight map).
template <typename acc_t>
bool build_weights(const Problem& pb, const Geometry& g, const Scales<acc_t>& s, TileBuf<acc_t>& t) {
  const Mode mode = pb.params.mode;
  const int64_t k = pb.params.min_separation;
  // The separation between the two tiles' cells is at least this much.
  const int64_t gap = g.diagonal ? 0 : g.j0 - (g.i0 + T - 1);
  const bool all_admitted = g.rows == T && g.cols == T && g.i0 + T <= g.len && g.j0 + T <= g.len &&
                            gap >= k && mode != Mode::kUpper;
  const bool has_ignore = pb.params.has_ignore_index;
  if (all_admitted && !g.diagonal && !pb.has_mask && !has_ignore && !pb.has_weight && s.grad_map == nullptr)
    return true;
  if (all_admitted) {
    // No per-cell rule applies inside this tile pair.
    std::fill(t.wa, t.wa + TT, s.focal);
    std::fill(t.wb, t.wb + TT, s.focal);
    std::fill(t.wp, t.wp + TT, s.penalty);
    if (g.diagonal)
      for (int r = 0; r < T; ++r) t.wp[r * T + r] = acc_t(0);  // no pair (i, i)
  } else {
    for (int r = 0; r < T; ++r) {
      const int64_t i = g.i0 + r;
      for (int c = 0; c < T; ++c) {
        const int64_t j = g.j0 + c;
        const bool ok = (r < g.rows) & (c < g.cols) & admits(i, j, g.len, k);
        t.wa[r * T + c] = (ok & in_triangle(mode, i, j)) ? s.focal : acc_t(0);
        t.wb[r * T + c] = (ok & in_triangle(mode, j, i)) ? s.focal : acc_t(0);
        t.wp[r * T + c] = (ok & (i != j)) ? s.penalty : acc_t(0);
      }
    }
  }
  if (pb.has_mask) {
    gather<uint8_t, acc_t>(pb.mask, g, false, t.ta, t.scratch);
    gather<uint8_t, acc_t>(pb.mask, g, true, t.tb, t.scratch);
    for (int o = 0; o < TT; ++o) {
      const acc_t ma = t.ta[o] != acc_t(0) ? acc_t(1) : acc_t(0);
      const acc_t mb = t.tb[o] != acc_t(0) ? acc_t(1) : acc_t(0);
      t.wa[o] *= ma;
      t.wb[o] *= mb;
      t.wp[o] *= ma * mb;
    }
  }
  if (has_ignore) {
    using Vec = Vectorized<acc_t>;
    gather_any(pb.target, pb.target_dtype, g, false, t.ta, t.scratch);
    gather_any(pb.target, pb.target_dtype, g, true, t.tb, t.scratch);
    for (int o = 0; o < TT; o += Vec::size()) {
      Vec ta = Vec::loadu(t.ta + o), tb = Vec::loadu(t.tb + o);
      const Vec ka = drop_ignored(pb.params, ta), kb = drop_ignored(pb.params, tb);
      (Vec::loadu(t.wa + o) * ka).store(t.wa + o);
      (Vec::loadu(t.wb + o) * kb).store(t.wb + o);
      (Vec::loadu(t.wp + o) * ka * kb).store(t.wp + o);
    }
  }
  if (pb.has_weight) {
    gather_any(pb.weight, pb.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32, g, false, t.ua,
               t.scratch);
    gather_any(pb.weight, pb.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32, g, true, t.ub,
               t.scratch);
  }
  if (s.grad_map != nullptr) {
    // Reduction none: cell (i, j)'s term is scaled by its own incoming
    // gradient; a penalty pair, split half to each cell, by their mean.
    gather_any(*s.grad_map, s.grad_dtype, g, false, t.ta, t.scratch);
    gather_any(*s.grad_map, s.grad_dtype, g, true, t.tb, t.scratch);
    for (int o = 0; o < TT; ++o) {
      t.wa[o] *= t.ta[o];
      t.wb[o] *= t.tb[o];
      t.wp[o] *= acc_t(0.5) * (t.ta[o] + t.tb[o]);
    }
  }
  return false;
}

inline void prefetch_inputs(const Problem& pb, const Geometry& g) {
  visit_dtype(pb.logits_dtype, [&](auto tag) { prefetch_tiles<decltype(tag)>(pb.logits, g); });
  visit_dtype(pb.target_dtype, [&](auto tag) { prefetch_tiles<decltype(tag)>(pb.target, g); });
}

// Where tile_math reads the own tile's logits and writes the own cells'
// results: the buffers, or (float32 / float64, a full tile, unit column
// stride) the tensors themselves, which saves a copy each way.
// How tile_math weighs the cells: per cell from the buffers, or, when
// build_weights found them all equal to the scales, by those constants.
template <typename acc_t>
struct TileWeights {
  bool uniform;
  acc_t focal, penalty;
  bool weighted;  // a weight map: ua / ub multiply each cell's term (not its count)
};

template <typename acc_t>
void gather_inputs(const Problem& pb, const Geometry& g, TileBuf<acc_t>& t) {
  gather_any(pb.logits, pb.logits_dtype, g, false, t.xa, t.scratch);
  gather_any(pb.logits, pb.logits_dtype, g, true, t.xb, t.scratch);
  gather_any(pb.target, pb.target_dtype, g, false, t.ta, t.scratch);
  gather_any(pb.target, pb.target_dtype, g, true, t.tb, t.scratch);
  if (pb.params.has_ignore_index) {  // build_weights dropped their cells; read as 0 to stay finite
    using Vec = Vectorized<acc_t>;
    for (int o = 0; o < TT; o += Vec::size()) {
      Vec ta = Vec::loadu(t.ta + o), tb = Vec::loadu(t.tb + o);
      drop_ignored(pb.params, ta);
      drop_ignored(pb.params, tb);
      ta.store(t.ta + o);
      tb.store(t.tb + o);
    }
  }
  const double eps = pb.params.label_smoothing;
  if (eps != 0.0) {
    const TargetSmoothing<acc_t> smooth(eps);
    for (int o = 0; o < TT; ++o) {
      t.ta[o] = smooth(t.ta[o]);
      t.tb[o] = smooth(t.tb[o]);
    }
  }
}

// xa / xb of the tile (values for cells (i, j) / (j, i)) into a contiguous
// [batch, L, L] output; a diagonal tile adds both halves of each cell. The
// mirror values are transposed first, so that every store runs along a row.
template <typename out_t, typename acc_t>
void scatter(TileBuf<acc_t>& t, const Geometry& g, int64_t L, out_t* out) {
  out_t* base = out + g.b * L * L;
  const bool full = g.rows == T && g.cols == T;
  if constexpr (std::is_same_v<out_t, acc_t>) {
    if (full && !g.diagonal) {  // the mirror transposed on the way into the output
      for (int r = 0; r < T; ++r) std::memcpy(base + (g.i0 + r) * L + g.j0, t.xa + r * T, T * sizeof(acc_t));
      transpose_tile(t.xb, T, base + g.j0 * L + g.i0, L);
      return;
    }
  }
  transpose_tile(t.xb, T, t.scratch, T);  // scratch[r*T + c] belongs to cell (j0 + r, i0 + c)
  if (g.diagonal) {
    for (int r = 0; r < g.rows; ++r) {
      out_t* __restrict__ row = base + (g.i0 + r) * L + g.j0;
      const acc_t* a = t.xa + r * T;
      const acc_t* b = t.scratch + r * T;
      for (int c = 0; c < g.cols; ++c) row[c] = static_cast<out_t>(acc_t(0.5) * (a[c] + b[c]));
    }
    return;
  }
  for (int r = 0; r < g.rows; ++r) {
    out_t* __restrict__ row = base + (g.i0 + r) * L + g.j0;
    const acc_t* a = t.xa + r * T;
    for (int c = 0; c < g.cols; ++c) row[c] = static_cast<out_t>(a[c]);
  }
  for (int r = 0; r < g.cols; ++r) {
    out_t* __restrict__ row = base + (g.j0 + r) * L + g.i0;
    const acc_t* b = t.scratch + r * T;
    for (int c = 0; c < g.rows; ++c) row[c] = static_cast<out_t>(b[c]);
  }
}

// What the math leaves in xa / xb besides the sums: nothing, the per-cell
// loss map, or the per-cell gradient (of the weighted loss).
enum class Store { kNothing, kLossMap, kGrad };

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal

#include "sigmoid/cpu/stream_impl.h"

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {

// The math over one gathered tile pair: the tile's four sums into `sums`
// (unless null), and per-cell results in xa / xb as `S` asks.
// Stored gradients are times grad_scale (the sums are not).
template <Mode M, GammaKind G, Store S, typename acc_t>
void tile_math(TileBuf<acc_t>& t, const TileWeights<acc_t>& w, const Params& prm, double* sums,
               acc_t grad_scale = 1) {
  using Vec = Vectorized<acc_t>;
  constexpr int W = Vec::size();
  const FocalCoefs<Vec> k(prm);
  const bool with_penalty = prm.symmetry_weight > 0.0;
  const Vec delta(static_cast<acc_t>(prm.huber_delta));
  const Vec half_lambda(static_cast<acc_t>(0.5 * prm.symmetry_weight));
  const Vec w_focal(w.focal), w_penalty(w.penalty), g_scale(grad_scale);
  Vec s_focal(0), s_cells(0), s_pen(0), s_pairs(0), s_target(0);
  for (int o = 0; o < TT; o += W) {
    const Vec xa = Vec::loadu(t.xa + o), xb = Vec::loadu(t.xb + o);
    const Vec ta = Vec::loadu(t.ta + o), tb = Vec::loadu(t.tb + o);
    const Vec wa = w.uniform ? w_focal : Vec::loadu(t.wa + o);
    const Vec wb = w.uniform ? w_focal : Vec::loadu(t.wb + o);
    Vec la, lb, ga, gb;
    if (w.weighted) {
      pair_focal<M, G>(xa, xb, ta, tb, wa * Vec::loadu(t.ua + o), wb * Vec::loadu(t.ub + o), k, la, lb, ga, gb);
    } else {
      pair_focal<M, G>(xa, xb, ta, tb, wa, wb, k, la, lb, ga, gb);
    }
    Vec rho(0), drho(0), wp(0);
    if (with_penalty) {
      wp = w.uniform ? w_penalty : Vec::loadu(t.wp + o);
      penalty_term(xa - xb, prm.penalty, delta, rho, drho);
    }
    if (with_penalty) {  // a pair that does not count is not read
      rho = weighted(wp, rho);
      drho = weighted(wp, drho);
    }
    if (S == Store::kGrad) {
      ((ga + drho) * g_scale).store(t.xa + o);
      ((gb - drho) * g_scale).store(t.xb + o);
    } else if (S == Store::kLossMap) {
      (la + half_lambda * rho).store(t.xa + o);
      (lb + half_lambda * rho).store(t.xb + o);
    }
    s_focal = s_focal + la + lb;
    s_cells = s_cells + wa + wb;
    s_pen = s_pen + rho;
    s_pairs = s_pairs + wp;
    s_target = s_target + wa * ta + wb * tb;
  }
  if (sums != nullptr) {
    // Lanes summed in a fixed order: the result does not depend on threads.
    const Vec* acc[kNumPartials] = {&s_focal, &s_cells, &s_pen, &s_pairs, &s_target};
    for (int s = 0; s < kNumPartials; ++s) {
      alignas(64) acc_t lanes[W];
      acc[s]->store(lanes);
      double total = 0;
      for (int l = 0; l < W; ++l) total += static_cast<double>(lanes[l]);
      sums[s] = total;
    }
  }
}

template <typename acc_t, Mode M, GammaKind G>
struct Kernels {
  // cell_out: null, the loss map (reduction none) or, for forward_train, the
  // gradient of the unnormalized sum (weights 1), both [batch, L, L].
  template <Store S>
  static void forward_pass(const Problem& pb, void* cell_out, double* partials, acc_t grad_scale = 1) {
    const int64_t items = pb.batch * tile_pairs_per_sample(num_tiles(pb.L));
    at::parallel_for(0, items, 4, [&](int64_t begin, int64_t end) {
      TileBuf<acc_t> t;
      const Scales<acc_t> unit;
      for (int64_t item = begin; item < end; ++item) {
        const Geometry g = tile_geometry(pb, item);
        if (item + 1 < end) prefetch_inputs(pb, tile_geometry(pb, item + 1));
        const TileWeights<acc_t> weights{build_weights(pb, g, unit, t), unit.focal, unit.penalty, pb.has_weight};
        gather_inputs(pb, g, t);
        double sums[kNumPartials];
        tile_math<M, G, S>(t, weights, params_of_sample(pb, g.b), sums, grad_scale);
        const double half = g.diagonal ? 0.5 : 1.0;  // a diagonal tile sees each pair twice
        for (int s = 0; s < kNumPartials; ++s) partials[item * kNumPartials + s] = half * sums[s];
        if (S != Store::kNothing) {
          visit_dtype(pb.logits_dtype, [&](auto tag) {
            scatter(t, g, pb.L, static_cast<decltype(tag)*>(cell_out));
          });
        }
      }
    });
  }

  // Modes none and upper without a penalty: row by row (stream_impl.h).
  template <Store S>
  static void stream_pass(const Problem& pb, StreamCall<acc_t>& call, double* partials) {
    if constexpr (M == Mode::kNone || M == Mode::kUpper) {
      call.per_cell = needs_per_cell(pb, call.scales);
      stream<acc_t, M, G, S>(pb, call, partials);
    }
  }

  static void forward(const Problem& pb, void* loss_map, double* partials, void* grad_unit, double grad_scale) {
    if (streams(pb)) {
      StreamCall<acc_t> call;
      call.out = loss_map != nullptr ? loss_map : grad_unit;
      call.grad_store_scale = static_cast<acc_t>(grad_scale);
      if (loss_map != nullptr) {
        stream_pass<Store::kLossMap>(pb, call, partials);
      } else if (grad_unit != nullptr) {
        stream_pass<Store::kGrad>(pb, call, partials);
      } else {
        stream_pass<Store::kNothing>(pb, call, partials);
      }
      return;
    }
    if (loss_map != nullptr) {
      forward_pass<Store::kLossMap>(pb, loss_map, partials);
    } else if (grad_unit != nullptr) {
      forward_pass<Store::kGrad>(pb, grad_unit, partials, static_cast<acc_t>(grad_scale));
    } else {
      forward_pass<Store::kNothing>(pb, nullptr, partials);
    }
  }

  static void backward(const Problem& pb, const GradSource& src, void* grad) {
    const int64_t items = pb.batch * tile_pairs_per_sample(num_tiles(pb.L));
    Scales<acc_t> scales;
    double grad_value = 0.0;
    const Params& prm = pb.params;
    if (prm.reduction == Reduction::kNone) {
      scales.penalty = static_cast<acc_t>(prm.symmetry_weight);
      scales.grad_map = &src.grad_map;
      scales.grad_dtype = pb.logits_dtype;
    } else {
      double g = 0;
      visit_dtype(pb.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32,
                  [&](auto tag) {
                    g = static_cast<double>(*static_cast<const decltype(tag)*>(src.grad_scalar));
                  });
      double fs, ps;
      reduction_scales(src.stats, prm, 0, fs, ps);
      scales.focal = static_cast<acc_t>(fs * g);
      scales.penalty = static_cast<acc_t>(ps * g);
      grad_value = g;
    }
    // With normalize sample each sample's focal terms have their own scale.
    const bool per_sample = prm.reduction != Reduction::kNone && prm.normalize == Normalize::kSample;
    if (streams(pb)) {
      StreamCall<acc_t> call;
      call.scales = scales;
      call.out = grad;
      if (per_sample) {
        call.sample_scales = src.stats + kNumStats;
        call.grad_value = grad_value;
      }
      stream_pass<Store::kGrad>(pb, call, nullptr);
      return;
    }
    at::parallel_for(0, items, 4, [&](int64_t begin, int64_t end) {
      TileBuf<acc_t> t;
      Scales<acc_t> scales_of_item = scales;
      for (int64_t item = begin; item < end; ++item) {
        const Geometry g = tile_geometry(pb, item);
        if (item + 1 < end) prefetch_inputs(pb, tile_geometry(pb, item + 1));
        if (per_sample) {
          double fs, ps;
          reduction_scales(src.stats, prm, g.b, fs, ps);
          scales_of_item.focal = static_cast<acc_t>(fs * grad_value);
        }
        const TileWeights<acc_t> weights{build_weights(pb, g, scales_of_item, t), scales_of_item.focal,
                                         scales_of_item.penalty, pb.has_weight};
        gather_inputs(pb, g, t);
        tile_math<M, G, Store::kGrad>(t, weights, params_of_sample(pb, g.b), nullptr);
        visit_dtype(pb.logits_dtype, [&](auto tag) {
          scatter(t, g, pb.L, static_cast<decltype(tag)*>(grad));
        });
      }
    });
  }
};

// Picks the instantiation for the run-time mode, gamma and dtype.
template <template <typename, Mode, GammaKind> class K, typename F>
void dispatch(const Problem& pb, F&& call) {
  auto with_gamma = [&](auto acc_tag, auto mode_tag) {
    using acc_t = decltype(acc_tag);
    constexpr Mode M = decltype(mode_tag)::value;
    switch (pb.params.gamma_kind) {
      case GammaKind::kZero: call(K<acc_t, M, GammaKind::kZero>()); break;
      case GammaKind::kOne: call(K<acc_t, M, GammaKind::kOne>()); break;
      case GammaKind::kTwo: call(K<acc_t, M, GammaKind::kTwo>()); break;
      case GammaKind::kGeneral: call(K<acc_t, M, GammaKind::kGeneral>()); break;
    }
  };
  auto with_mode = [&](auto acc_tag) {
    switch (pb.params.mode) {
      case Mode::kNone: with_gamma(acc_tag, std::integral_constant<Mode, Mode::kNone>()); break;
      case Mode::kAverage: with_gamma(acc_tag, std::integral_constant<Mode, Mode::kAverage>()); break;
      case Mode::kPair: with_gamma(acc_tag, std::integral_constant<Mode, Mode::kPair>()); break;
      case Mode::kUpper: with_gamma(acc_tag, std::integral_constant<Mode, Mode::kUpper>()); break;
      case Mode::kSum: break;  // the softmax loss's only: parse_params never gives it
    }
  };
  if (pb.logits_dtype == DType::kFloat64) {
    with_mode(double());
  } else {
    with_mode(float());
  }
}

void forward(const Problem& pb, void* loss_map, double* partials, void* grad_unit, double grad_scale) {
  dispatch<Kernels>(pb, [&](auto k) { decltype(k)::forward(pb, loss_map, partials, grad_unit, grad_scale); });
}

void backward(const Problem& pb, const GradSource& src, void* grad) {
  dispatch<Kernels>(pb, [&](auto k) { decltype(k)::backward(pb, src, grad); });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal
