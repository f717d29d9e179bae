// The CPU kernels of the softmax focal loss over bins, compiled once per
// instruction set as kernels_impl.h is (softmax_<isa>.cpp).
//
// The traversal is the binary loss's (engine/tiles.h): a work item is the tile pair
// (I, J), I <= J, with its mirror (J, I), and inside it every unordered cell
// pair (i, j), (j, i) once. A cell's bins are what the SIMD vectors run over:
// for channel-last logits they are contiguous for the mirror cell as much as
// for the own one, so nothing is transposed. Per cell pair, one softmax in
// modes sum and average (of s (x_ij + x_ji), shared by both cells), two in
// pair, none and upper; the targets that meet a softmax are summed before its
// gradient is formed (softmax/math.h).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>  // vec_reduce_all (not included by every ISA's vec.h)

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#include "softmax/types.h"
#include "engine/tiles.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/prefetch.h"
#include "engine/cpu/vec_math.h"
#include "engine/cpu/visit_dtype.h"
// After vec_math.h: its templates find the vector primitives.
#include "softmax/math.h"

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {
namespace softmax {

template <typename acc_t>
struct alignas(64) Workspace {
  acc_t lp[2][kMaxBins];  // logits of the pair's softmaxes, then their log-probabilities
  acc_t p[2][kMaxBins];   // probabilities
  acc_t t[2][kMaxBins];   // dense targets of cells (i, j) and (j, i): soft, or smoothed bin indices
  acc_t aphi[kMaxBins];   // alpha_c phi_c of the softmax at hand
  acc_t aF[kMaxBins];     // alpha_c F_c
  acc_t u[kMaxBins];      // sum over the targets that meet it of weight * t_c * alpha_c F_c
  acc_t alpha[kMaxBins];  // class weights (1 without), 0 past the last bin
  acc_t g[2][kMaxBins];   // gradient rows of cells (i, j) and (j, i)
};

// Horizontal reductions by shuffles (at::vec's, a fixed tree: the result does not depend on
// threads). maximum carries a NaN lane through, so a NaN bin makes the softmax NaN.
template <typename acc_t>
acc_t lane_max(const Vectorized<acc_t>& v) {
  return at::vec::vec_reduce_all<acc_t>([](Vectorized<acc_t>& a, Vectorized<acc_t>& b) { return sf_max(a, b); }, v);
}

template <typename acc_t>
acc_t lane_sum(const Vectorized<acc_t>& v) {
  return at::vec::vec_reduce_all<acc_t>([](Vectorized<acc_t>& a, Vectorized<acc_t>& b) { return a + b; }, v);
}

template <typename src_t, typename acc_t>
void load_bins(const void* data, int64_t offset, int64_t stride, int bins, acc_t* out) {
  const src_t* src = static_cast<const src_t*>(data) + offset;
  if constexpr (std::is_same_v<acc_t, float> &&
                (std::is_same_v<src_t, c10::BFloat16> || std::is_same_v<src_t, c10::Half>)) {
    if (stride == 1) {
      // SIMD widening (at::vec::convert has none from 16-bit floats: its scalar loop cost more than the math).
      using Narrow = Vectorized<src_t>;
      constexpr int W = Vectorized<float>::size();
      int c = 0;
      for (; c + Narrow::size() <= bins; c += Narrow::size()) {
        Vectorized<float> lo, hi;
        if constexpr (std::is_same_v<src_t, c10::BFloat16>) {
          std::tie(lo, hi) = at::vec::convert_bfloat16_float(Narrow::loadu(src + c));
        } else {
          std::tie(lo, hi) = at::vec::convert_half_float(Narrow::loadu(src + c));
        }
        lo.store(out + c);
        hi.store(out + c + W);
      }
      for (; c < bins; ++c) out[c] = static_cast<float>(src[c]);
      return;
    }
  }
  if (stride == 1) {
    for (int c = 0; c < bins; ++c) out[c] = static_cast<acc_t>(src[c]);
  } else {
    for (int c = 0; c < bins; ++c) out[c] = static_cast<acc_t>(src[c * stride]);
  }
}

// Each map's element offset of one sample, resolved once a tile pair (batch_offset divides).
struct SampleOffsets {
  int64_t logits = 0, target = 0, mask = 0, weight = 0, grad_map = 0;
};

inline SampleOffsets sample_offsets(const SoftmaxProblem& pb, const SoftmaxGradSource* src, int64_t b) {
  SampleOffsets o;
  o.logits = pb.cells.logits.batch_offset(b);
  o.target = pb.cells.target.batch_offset(b);
  if (pb.cells.has_mask) o.mask = pb.cells.mask.batch_offset(b);
  if (pb.cells.has_weight) o.weight = pb.cells.weight.batch_offset(b);
  if (src != nullptr && src->grad_scalar == nullptr) o.grad_map = src->grad_map.batch_offset(b);
  return o;
}

// Cell (i, j) of the sample whose offset in v is `base`.
template <typename acc_t>
acc_t load_cell(const MapView& v, DType dt, int64_t base, int64_t i, int64_t j) {
  acc_t value = 0;
  const int64_t off = base + i * v.row_stride + j * v.col_stride;
  visit_dtype(dt, [&](auto tag) { value = static_cast<acc_t>(static_cast<const decltype(tag)*>(v.data)[off]); });
  return value;
}

inline int64_t load_bin_index(const MapView& v, BinTarget kind, int64_t base, int64_t i, int64_t j) {
  const int64_t off = base + i * v.row_stride + j * v.col_stride;
  switch (kind) {
    case BinTarget::kUInt8: return static_cast<const uint8_t*>(v.data)[off];
    case BinTarget::kInt32: return static_cast<const int32_t*>(v.data)[off];
    default: return static_cast<const int64_t*>(v.data)[off];
  }
}

// Whether cell (ri, rj) of a sample of length len (its offsets `at`) counts (SPEC.md): admitted by the length and
// the separation, in the mode's triangle, not masked out, its bin not ignored. Its bin in `bin`
// (clamped: validate=False never reads out of bounds; 0 where it does not count). The kernels and
// the training forward's up-front count (softmax_sample_cells) read this one test.
inline bool cell_counts(const SoftmaxProblem& pb, const SampleOffsets& at, int64_t ri, int64_t rj, int64_t len,
                        int64_t& bin) {
  const Problem& cells = pb.cells;
  bin = 0;
  if (!admits(ri, rj, len, cells.params.min_separation) || !in_triangle(cells.params.mode, ri, rj)) return false;
  if (cells.has_mask && load_cell<float>(cells.mask, DType::kUInt8, at.mask, ri, rj) == 0.0f) return false;
  if (pb.target_kind == BinTarget::kSoft) return true;
  const int64_t raw = load_bin_index(cells.target, pb.target_kind, at.target, ri, rj);
  if (bin_ignored(cells.params, raw)) return false;
  bin = std::min<int64_t>(std::max<int64_t>(raw, 0), pb.bins - 1);
  return true;
}

// log1p(rest) for the sum of a softmax's exps but its largest (rest in [0, bins - 1]), inline:
// the out-of-line log1pf was a sixth of the pass. rest <= 1: vec_math.h's log1p_small, which keeps
// the relative accuracy of a small rest (a confident bin's small loss); else log(1 + rest) =
// k log 2 + log1p_small(m - 1) with 1 + rest = 2^k m, m in [1, 2) (m - 1 exact), where rounding
// 1 + rest costs at most 2^-24 of a log >= log 2.
inline float first_lane(const Vectorized<float>& v) {
  float lane;
  v.store(&lane, 1);
  return lane;
}

inline float log1p_of_rest(float rest) {
  using V = Vectorized<float>;
  if (rest <= 1.0f) return first_lane(log1p_small(V(rest), V(), V()));
  const float u = 1.0f + rest;
  uint32_t bits;
  std::memcpy(&bits, &u, sizeof(bits));
  const int k = static_cast<int>(bits >> 23) - 127;
  bits = (bits & 0x007fffffu) | 0x3f800000u;
  float m;
  std::memcpy(&m, &bits, sizeof(m));
  return static_cast<float>(k) * 0.69314718056f + first_lane(log1p_small(V(m - 1.0f), V(), V()));
}
inline double log1p_of_rest(double rest) { return std::log1p(rest); }

// What turns the exps of a softmax into probabilities: p_c = e_c * inv and
// log p_c = (z_c - m) - log_sum.
template <typename acc_t>
struct SoftmaxNorm {
  acc_t m, log_sum, inv;
  acc_t others;  // the sum of exps but the largest bin's 1: sum = 1 + others
  acc_t log_p(acc_t z) const { return (z - m) - log_sum; }
};

// e_c = exp(z_c - m) into p (0 past the last bin, up to the padded length, so
// that no vector loop needs a tail). The largest bin adds exactly 1 to the sum
// of exps: kept apart, log(sum) is log1p(the rest), which keeps the relative
// accuracy of a small loss where one bin holds nearly all the mass (sum = 1 +
// rest would round the rest away); (z - m) - log_sum, not z - (m + log_sum),
// for the same reason.
// (On AVX-512 in mask-register lanes with vscalefps's exp: engine/cpu/mask_vec.h.)
template <typename acc_t>
SoftmaxNorm<acc_t> softmax_exps(acc_t* z, acc_t* p, int bins, int padded) {
  using Vec = LaneVec<acc_t>;
  constexpr int W = Vec::size();
  for (int c = bins; c < padded; ++c) z[c] = z[0];  // neutral for the max
  Vec mx = Vec::loadu(z);
  for (int o = W; o < padded; o += W) mx = sf_max(mx, Vec::loadu(z + o));
  const acc_t m_scalar = lane_max(as_aten(mx));
  // A NaN logit makes every probability and log probability NaN (said at once; sf_exp carries NaN too).
  if (m_scalar != m_scalar) {
    for (int o = 0; o < padded; o += W) Vec(m_scalar).store(p + o);
    return {m_scalar, m_scalar, m_scalar, m_scalar};
  }
  const Vec m(m_scalar);
  const Vec zero(0), one(1);
  Vec rest(0), ties(0);
  for (int o = 0; o < padded; o += W) {
    const Vec v = Vec::loadu(z + o);
    const auto at_max = v == m;
    Vec e = sf_exp(v - m);
    Vec tie = sf_select(at_max, one, zero);
    if (o + W > bins) {
      e = Vec::set(zero, e, bins - o);
      tie = Vec::set(zero, tie, bins - o);
    }
    e.store(p + o);
    rest = rest + sf_select(at_max, zero, e);
    ties = ties + tie;
  }
  const acc_t others = lane_sum(as_aten(rest)) + (lane_sum(as_aten(ties)) - acc_t(1));
  return {m_scalar, log1p_of_rest(others), acc_t(1) / (acc_t(1) + others), others};
}

// z -> log softmax and the exps -> probabilities, for every bin.
template <typename acc_t>
void normalize(const SoftmaxNorm<acc_t>& norm, acc_t* lp, acc_t* p, int padded) {
  using Vec = Vectorized<acc_t>;
  const Vec m(norm.m), log_sum(norm.log_sum), inv(norm.inv);
  for (int o = 0; o < padded; o += Vec::size()) {
    ((Vec::loadu(lp + o) - m) - log_sum).store(lp + o);
    (Vec::loadu(p + o) * inv).store(p + o);
  }
}

template <typename acc_t>
void scalar_factors(GammaKind kind, acc_t lp, acc_t p, acc_t gamma, acc_t& phi, acc_t& F) {
  switch (kind) {
    case GammaKind::kZero: bin_focal_factors<GammaKind::kZero>(lp, p, gamma, phi, F); break;
    case GammaKind::kOne: bin_focal_factors<GammaKind::kOne>(lp, p, gamma, phi, F); break;
    case GammaKind::kTwo: bin_focal_factors<GammaKind::kTwo>(lp, p, gamma, phi, F); break;
    default: bin_focal_factors<GammaKind::kGeneral>(lp, p, gamma, phi, F); break;
  }
}

// alpha phi and alpha F of every bin of one softmax.
template <GammaKind G, typename acc_t>
void vector_factors(const acc_t* lp, const acc_t* p, const acc_t* alpha, acc_t gamma, int padded, acc_t* aphi,
                    acc_t* aF) {
  using Vec = Vectorized<acc_t>;
  const Vec vgamma(gamma);
  for (int o = 0; o < padded; o += Vec::size()) {
    Vec phi, F;
    bin_focal_factors<G>(Vec::loadu(lp + o), Vec::loadu(p + o), vgamma, phi, F);
    const Vec a = Vec::loadu(alpha + o);
    weighted(a, phi).store(aphi + o);  // a bin at -inf has phi = -inf
    (a * F).store(aF + o);
  }
}

template <typename acc_t>
acc_t dot(const acc_t* a, const acc_t* b, int padded) {
  using Vec = Vectorized<acc_t>;
  Vec s(0);
  for (int o = 0; o < padded; o += Vec::size()) s = s + weighted(Vec::loadu(a + o), Vec::loadu(b + o));
  return lane_sum(s);
}

// One target meeting one softmax: which cell's target, the weight of its
// gradient, and its share of that cell's loss.
template <typename acc_t>
struct Meeting {
  int cell;
  acc_t weight, share;
};

// The cell pair at hand: its validity (0 or 1, for the count), the weight of its
// loss (validity times the weight map's value) and gradient weights (that times
// the backward scale; 0 in a forward pass that forms no gradient).
template <typename acc_t>
struct CellPair {
  int64_t b, i, j;
  const SampleOffsets* at;  // the sample's offsets in each map
  bool diagonal;
  acc_t valid[2], loss_weight[2], weight[2];
  int64_t bin[2];  // integer targets
};

template <typename acc_t, Sharing K>
struct PairMath {
  const SoftmaxProblem& pb;
  int bins, padded;
  acc_t sym_scale;  // s: 1 in mode sum, 1/2 in average
  acc_t gamma;
  GammaKind gamma_kind;
  bool sparse;  // integer targets and no smoothing: a target meets its softmax at one bin
  acc_t keep, shift;  // smoothing: t (1 - eps) + eps / bins

  explicit PairMath(const SoftmaxProblem& problem) : pb(problem) {
    const Params& prm = pb.cells.params;
    bins = pb.bins;
    padded = (bins + Vectorized<acc_t>::size() - 1) / Vectorized<acc_t>::size() * Vectorized<acc_t>::size();
    sym_scale = prm.mode == Mode::kAverage ? acc_t(0.5) : acc_t(1);
    gamma = static_cast<acc_t>(prm.gamma);
    gamma_kind = prm.gamma_kind;
    sparse = pb.target_kind != BinTarget::kSoft && prm.label_smoothing == 0.0;
    keep = static_cast<acc_t>(1.0 - prm.label_smoothing);
    shift = static_cast<acc_t>(prm.label_smoothing / bins);
  }

  void init(Workspace<acc_t>& ws) const {
    for (int c = 0; c < kMaxBins; ++c)
      ws.alpha[c] = c >= bins ? acc_t(0) : pb.alpha != nullptr ? static_cast<acc_t>(pb.alpha[c]) : acc_t(1);
  }

  static int64_t cell_offset(const MapView& v, int64_t base, const CellPair<acc_t>& cp, int x) {
    const int64_t r = x == 0 ? cp.i : cp.j, c = x == 0 ? cp.j : cp.i;
    return base + r * v.row_stride + c * v.col_stride;
  }

  void load_logits(const CellPair<acc_t>& cp, int x, acc_t* out) const {
    const MapView& v = pb.cells.logits;
    visit_dtype(pb.cells.logits_dtype, [&](auto tag) {
      load_bins<decltype(tag)>(v.data, cell_offset(v, cp.at->logits, cp, x), pb.logits_bin_stride, bins, out);
    });
  }

  void load_target(const CellPair<acc_t>& cp, int x, acc_t* out) const {
    if (pb.target_kind == BinTarget::kSoft) {
      const MapView& v = pb.cells.target;
      visit_dtype(pb.cells.target_dtype, [&](auto tag) {
        load_bins<decltype(tag)>(v.data, cell_offset(v, cp.at->target, cp, x), pb.target_bin_stride, bins, out);
      });
      for (int c = 0; c < bins; ++c) out[c] = out[c] * keep + shift;
    } else {
      for (int c = 0; c < bins; ++c) out[c] = shift;
      out[cp.bin[x]] += keep;
    }
    for (int c = bins; c < padded; ++c) out[c] = 0;
  }

  // The softmaxes of the pair: logits in ws.lp, exps in ws.p, what normalizes them in
  // norm[]; returns how many.
  int softmaxes(const CellPair<acc_t>& cp, Workspace<acc_t>& ws, SoftmaxNorm<acc_t>* norm) const {
    using Vec = Vectorized<acc_t>;
    const int n = cp.diagonal || K == Sharing::kSymmetric ? 1 : 2;
    load_logits(cp, 0, ws.lp[0]);
    if (K == Sharing::kSymmetric) {
      if (cp.diagonal) {
        const Vec s(2 * sym_scale);
        for (int o = 0; o < padded; o += Vec::size()) (Vec::loadu(ws.lp[0] + o) * s).store(ws.lp[0] + o);
      } else {
        load_logits(cp, 1, ws.lp[1]);
        const Vec s(sym_scale);
        for (int o = 0; o < padded; o += Vec::size())
          ((Vec::loadu(ws.lp[0] + o) + Vec::loadu(ws.lp[1] + o)) * s).store(ws.lp[0] + o);
      }
    } else if (n == 2) {
      load_logits(cp, 1, ws.lp[1]);
    }
    for (int v = 0; v < n; ++v) norm[v] = softmax_exps(ws.lp[v], ws.p[v], bins, padded);
    return n;
  }

  // Which targets meet softmax v, with their gradient weights and loss shares.
  int meetings(const CellPair<acc_t>& cp, int v, Meeting<acc_t>* m) const {
    if (cp.diagonal) {
      m[0] = {0, cp.weight[0], acc_t(1)};
      return 1;
    }
    if (K == Sharing::kOwn) {
      m[0] = {v, cp.weight[v], acc_t(1)};
      return 1;
    }
    const acc_t share = K == Sharing::kPair ? acc_t(0.5) : acc_t(1);
    m[0] = {0, share * cp.weight[0], share};
    m[1] = {1, share * cp.weight[1], share};
    return 2;
  }

  // The losses of both cells (unweighted) into loss[]; with `grad`, the
  // gradient rows of both cells into ws.g (of sum_x weight_x loss_x).
  void run(const CellPair<acc_t>& cp, Workspace<acc_t>& ws, bool grad, acc_t* loss) const {
    using Vec = Vectorized<acc_t>;
    SoftmaxNorm<acc_t> norm[2];
    const int n = softmaxes(cp, ws, norm);
    const int ncells = cp.diagonal ? 1 : 2;
    // d/dx of a symmetric softmax's logits: s for each cell (2 s on the diagonal).
    const acc_t logit_scale = K != Sharing::kSymmetric ? acc_t(1) : cp.diagonal ? 2 * sym_scale : sym_scale;
    loss[0] = loss[1] = 0;
    if (!sparse) {
      for (int x = 0; x < ncells; ++x) load_target(cp, x, ws.t[x]);
      for (int v = 0; v < n; ++v) normalize(norm[v], ws.lp[v], ws.p[v], padded);
    }
    for (int v = 0; v < n; ++v) {
      Meeting<acc_t> meet[2];
      const int nm = meetings(cp, v, meet);
      acc_t* g = ws.g[K == Sharing::kSymmetric ? 0 : v];
      if (sparse) {
        // Only the target bins' log p and p are needed; the gradient of every other bin is
        // its exp times one scalar, written straight from the exps.
        int64_t at[2];
        acc_t minus[2], q[2], pk[2];
        acc_t A = 0;
        for (int k = 0; k < nm; ++k) {
          const int64_t bin = cp.bin[meet[k].cell];
          const acc_t lp = norm[v].log_p(ws.lp[v][bin]);
          pk[k] = ws.p[v][bin] * norm[v].inv;
          acc_t phi, F;
          scalar_factors(gamma_kind, lp, pk[k], gamma, phi, F);
          loss[meet[k].cell] -= meet[k].share * weighted(ws.alpha[bin], phi);
          at[k] = bin;
          minus[k] = meet[k].weight * ws.alpha[bin] * F;
          // 1 - p from the exps, without cancellation where p is close to 1: (sum - e) / sum with
          // sum - e = (1 - e) + others, a sum of two terms >= 0 (1 - e is 0 for the largest bin, exact
          // for e >= 1/2).
          q[k] = ((acc_t(1) - ws.p[v][bin]) + norm[v].others) * norm[v].inv;
          A += minus[k];
        }
        if (!grad) continue;
        const Vec c(A * norm[v].inv * logit_scale);
        for (int o = 0; o < padded; o += Vec::size()) (Vec::loadu(ws.p[v] + o) * c).store(g + o);
        // At a target bin, p A - here = p (A - here) - (1 - p) here, with A - here summed from the
        // other bins' terms: no cancellation where p is close to 1 (1 - p as q above).
        for (int k = 0; k < nm; ++k) {
          acc_t here = 0, elsewhere = 0;
          for (int l = 0; l < nm; ++l) (at[l] == at[k] ? here : elsewhere) += minus[l];
          const acc_t value = logit_scale * (pk[k] * elsewhere - q[k] * here);
          g[at[k]] = value;
        }
        continue;
      }
      switch (gamma_kind) {
        case GammaKind::kZero: vector_factors<GammaKind::kZero>(ws.lp[v], ws.p[v], ws.alpha, gamma, padded, ws.aphi, ws.aF); break;
        case GammaKind::kOne: vector_factors<GammaKind::kOne>(ws.lp[v], ws.p[v], ws.alpha, gamma, padded, ws.aphi, ws.aF); break;
        case GammaKind::kTwo: vector_factors<GammaKind::kTwo>(ws.lp[v], ws.p[v], ws.alpha, gamma, padded, ws.aphi, ws.aF); break;
        default: vector_factors<GammaKind::kGeneral>(ws.lp[v], ws.p[v], ws.alpha, gamma, padded, ws.aphi, ws.aF); break;
      }
      for (int k = 0; k < nm; ++k) loss[meet[k].cell] -= meet[k].share * dot(ws.t[meet[k].cell], ws.aphi, padded);
      if (!grad) continue;
      Vec u(0);
      std::fill(ws.u, ws.u + padded, acc_t(0));
      for (int k = 0; k < nm; ++k) {
        const Vec w(meet[k].weight);
        const acc_t* t = ws.t[meet[k].cell];
        for (int o = 0; o < padded; o += Vec::size()) {
          const Vec term = w * Vec::loadu(t + o) * Vec::loadu(ws.aF + o);
          (Vec::loadu(ws.u + o) + term).store(ws.u + o);
          u = u + term;
        }
      }
      const Vec vA(lane_sum(u)), s(logit_scale);
      for (int o = 0; o < padded; o += Vec::size()) {
        const Vec gv = (Vec::loadu(ws.p[v] + o) * vA - Vec::loadu(ws.u + o)) * s;
        gv.store(g + o);
      }
    }
  }
};

inline int64_t element_bytes(DType dt) {
  return dt == DType::kFloat64 ? 8 : dt == DType::kFloat32 ? 4 : dt == DType::kFloat16 || dt == DType::kBFloat16 ? 2 : 1;
}

// Starts loading the bins of cell (i, j) of the sample at `base`: every cache line they span
// (contiguous bins only).
inline void prefetch_bins(const MapView& v, int64_t element, int64_t base, int64_t i, int64_t j, int64_t bins,
                          int64_t bin_stride) {
  if (bin_stride != 1) return;
  constexpr int64_t kLine = 64;
  const char* cell = static_cast<const char*>(v.data) + (base + i * v.row_stride + j * v.col_stride) * element;
  for (int64_t at = 0; at < bins * element; at += kLine) prefetch_line(cell + at);
}

// The same for the gradient rows of cells (i, j) and (j, i) of sample b ([batch, L, L, bins]
// contiguous), which are about to be written: in a step that finds them out of cache (a training
// step's other work in between), each mirror row's read for ownership otherwise stalls the stores.
inline void prefetch_grad_rows(void* grad, int64_t element, int64_t b, int64_t L, int64_t i, int64_t j,
                               int64_t bins) {
  constexpr int64_t kLine = 64;
  const char* base = static_cast<const char*>(grad);
  const char* own = base + ((b * L + i) * L + j) * bins * element;
  const char* mirror = base + ((b * L + j) * L + i) * bins * element;
  for (int64_t at = 0; at < bins * element; at += kLine) {
    prefetch_line_for_write(own + at);
    prefetch_line_for_write(mirror + at);
  }
}

template <typename out_t, typename acc_t>
void store_bins(const acc_t* row, int bins, out_t* out) {
  if constexpr (std::is_same_v<acc_t, float> &&
                (std::is_same_v<out_t, c10::BFloat16> || std::is_same_v<out_t, c10::Half>)) {
    at::vec::convert(row, out, bins);  // ATen's SIMD rounding: a scalar conversion a value costs more than the math
  } else {
    for (int c = 0; c < bins; ++c) out[c] = static_cast<out_t>(row[c]);
  }
}

// A converted gradient row copied whole (inline: the memmove call cost more than the copy).
template <typename out_t>
void copy_row(const out_t* from, out_t* to, int64_t n) {
  using Vec = Vectorized<float>;
  const int64_t bytes = n * static_cast<int64_t>(sizeof(out_t)), step = Vec::size() * sizeof(float);
  const char* src = reinterpret_cast<const char*>(from);
  char* dst = reinterpret_cast<char*>(to);
  int64_t o = 0;
  for (; o + step <= bytes; o += step)
    Vec::loadu(reinterpret_cast<const float*>(src + o)).store(reinterpret_cast<float*>(dst + o));
  if (o < bytes) std::memcpy(dst + o, src + o, bytes - o);
}

// What a pass computes besides the partial sums.
struct PassOutputs {
  void* loss_map = nullptr;  // [batch, L, L]
  void* grad = nullptr;      // [batch, L, L, bins]
  const SoftmaxGradSource* src = nullptr;  // backward: the gradient's scales; else weights 1
  const double* sample_grad_scale = nullptr;  // forward with grad: each sample's gradient times this
  double* partials = nullptr;
};

// How far ahead the mirror cells' bins are prefetched, in cell pairs.
constexpr int kPrefetchAhead = 16;

template <typename acc_t, Sharing K>
void run_pass(const SoftmaxProblem& pb, const PassOutputs& out) {
  const Problem& cells = pb.cells;
  const int64_t items = cells.L == 0 ? 0 : cells.batch * tile_pairs_per_sample(num_tiles(cells.L));
  const int64_t L = cells.L, C = pb.bins;
  const bool grad = out.grad != nullptr;
  double grad_scalar = 1.0;
  if (out.src != nullptr && out.src->grad_scalar != nullptr) {
    grad_scalar = cells.logits_dtype == DType::kFloat64 ? *static_cast<const double*>(out.src->grad_scalar)
                                                        : *static_cast<const float*>(out.src->grad_scalar);
  }
  const PairMath<acc_t, K> math(pb);
  const int64_t element = element_bytes(cells.logits_dtype);
  const DType weight_dtype = cells.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    Workspace<acc_t> ws;
    math.init(ws);
    for (int64_t item = begin; item < end; ++item) {
      const TileGeometry g = tile_geometry(cells, item);
      acc_t scale = 1;
      if (out.src != nullptr && out.src->grad_scalar != nullptr)
        scale = static_cast<acc_t>(out.src->sample_stats[g.b * kNumSampleStats + kSampleScale] * grad_scalar);
      else if (out.sample_grad_scale != nullptr)
        scale = static_cast<acc_t>(out.sample_grad_scale[g.b]);
      const SampleOffsets at = sample_offsets(pb, out.src, g.b);
      double loss_sum = 0, cell_count = 0;
      for (int r = 0; r < g.rows; ++r) {
        for (int c = g.diagonal ? r : 0; c < g.cols; ++c) {
          CellPair<acc_t> cp;
          cp.b = g.b;
          cp.at = &at;
          cp.i = g.i0 + r;
          cp.j = g.j0 + c;
          cp.diagonal = cp.i == cp.j;
          for (int x = 0; x < 2; ++x) {
            const int64_t ri = x == 0 ? cp.i : cp.j, rj = x == 0 ? cp.j : cp.i;
            cp.bin[x] = 0;
            const bool ok = !(x == 1 && cp.diagonal) && cell_counts(pb, at, ri, rj, g.len, cp.bin[x]);
            cp.valid[x] = ok ? acc_t(1) : acc_t(0);
            cp.loss_weight[x] = cp.valid[x];
            if (ok && cells.has_weight)
              cp.loss_weight[x] *= load_cell<acc_t>(cells.weight, weight_dtype, at.weight, ri, rj);
            cp.weight[x] = grad ? cp.loss_weight[x] * scale : acc_t(0);
            if (grad && ok && out.src != nullptr && out.src->grad_scalar == nullptr)
              cp.weight[x] *= load_cell<acc_t>(out.src->grad_map, cells.logits_dtype, at.grad_map, ri, rj);
          }
          // The mirror cells of a tile row lie a map row apart (L * C values): too far for the
          // hardware prefetcher, so their bins are asked for kAhead cell pairs ahead (into the next tile
          // row at the end of one); the own cells' too, since a tile row's are only a few kB apart
          // from the next row's (measured: a tenth of a step still waited on them).
          {
            const int ahead = c + kPrefetchAhead, row = ahead < g.cols ? r : r + 1;
            if (row < g.rows) {
              const int64_t col = g.j0 + (ahead < g.cols ? ahead : ahead - g.cols);
              prefetch_bins(cells.logits, element, at.logits, col, g.i0 + row, C, pb.logits_bin_stride);
              prefetch_bins(cells.logits, element, at.logits, g.i0 + row, col, C, pb.logits_bin_stride);
              if (grad) prefetch_grad_rows(out.grad, element, g.b, L, g.i0 + row, col, C);
            }
          }
          const bool any_valid = cp.valid[0] != acc_t(0) || cp.valid[1] != acc_t(0);
          acc_t loss[2] = {0, 0};
          const int64_t own = ((g.b * L + cp.i) * L + cp.j), mirror = ((g.b * L + cp.j) * L + cp.i);
          if (any_valid) {
            math.run(cp, ws, grad, loss);
            // A term of weight 0 is not read (SPEC.md, "Non-finite logits"), nor is a gradient row that
            // only such terms meet: in modes none and upper that of a cell that does not count.
            for (int x = 0; x < 2; ++x) loss[x] = weighted(cp.loss_weight[x], loss[x]);
            if (grad) {
              const bool none_met = cp.weight[0] == acc_t(0) && cp.weight[1] == acc_t(0);
              for (int x = 0; x < 2; ++x) {
                const bool zero = K == Sharing::kOwn ? cp.weight[x] == acc_t(0) : none_met;
                if (zero) std::fill(ws.g[x], ws.g[x] + C, acc_t(0));
              }
            }
            loss_sum += static_cast<double>(loss[0] + loss[1]);
            cell_count += static_cast<double>(cp.valid[0] + cp.valid[1]);
          } else if (grad) {
            std::fill(ws.g[0], ws.g[0] + C, acc_t(0));
            std::fill(ws.g[1], ws.g[1] + C, acc_t(0));
          }
          visit_dtype(cells.logits_dtype, [&](auto tag) {
            using out_t = decltype(tag);
            if (grad) {
              out_t* own_row = static_cast<out_t*>(out.grad) + own * C;
              out_t* mirror_row = static_cast<out_t*>(out.grad) + mirror * C;
              store_bins(ws.g[0], C, own_row);
              if (!cp.diagonal) {
                if constexpr (K == Sharing::kSymmetric) {
                  copy_row(own_row, mirror_row, C);  // one row for both cells, converted once
                } else {
                  store_bins(ws.g[1], C, mirror_row);
                }
              }
            }
            if (out.loss_map != nullptr) {
              static_cast<out_t*>(out.loss_map)[own] = static_cast<out_t>(loss[0]);
              if (!cp.diagonal) static_cast<out_t*>(out.loss_map)[mirror] = static_cast<out_t>(loss[1]);
            }
          });
        }
      }
      if (out.partials != nullptr) {
        out.partials[item * kNumSoftmaxPartials + kSampleLoss] = loss_sum;
        out.partials[item * kNumSoftmaxPartials + kSampleCells] = cell_count;
      }
    }
  });
}

template <typename acc_t>
void dispatch_sharing(const SoftmaxProblem& pb, const PassOutputs& out) {
  switch (sharing_of(pb.cells.params.mode)) {
    case Sharing::kSymmetric: return run_pass<acc_t, Sharing::kSymmetric>(pb, out);
    case Sharing::kPair: return run_pass<acc_t, Sharing::kPair>(pb, out);
    default: return run_pass<acc_t, Sharing::kOwn>(pb, out);
  }
}

inline void dispatch(const SoftmaxProblem& pb, const PassOutputs& out) {
  if (pb.cells.logits_dtype == DType::kFloat64) {
    dispatch_sharing<double>(pb, out);
  } else {
    dispatch_sharing<float>(pb, out);
  }
}

}  // namespace softmax

void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, void* grad_unit,
                     const double* sample_grad_scale) {
  softmax::PassOutputs out;
  out.loss_map = loss_map;
  out.grad = grad_unit;
  out.sample_grad_scale = sample_grad_scale;
  out.partials = partials;
  softmax::dispatch(pb, out);
}

void softmax_sample_cells(const SoftmaxProblem& pb, double* cells_per_sample) {
  const int64_t batch = pb.cells.batch, L = pb.cells.L;
  std::vector<int64_t> per_row(batch * L, 0);
  at::parallel_for(0, batch * L, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / L, i = r % L, len = sample_length(pb.cells, b);
      const softmax::SampleOffsets at = softmax::sample_offsets(pb, nullptr, b);
      int64_t n = 0, bin = 0;
      for (int64_t j = 0; i < len && j < len; ++j) n += softmax::cell_counts(pb, at, i, j, len, bin);
      per_row[r] = n;
    }
  });
  for (int64_t b = 0; b < batch; ++b) {
    int64_t n = 0;
    for (int64_t i = 0; i < L; ++i) n += per_row[b * L + i];
    cells_per_sample[b] = static_cast<double>(n);
  }
}

void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad) {
  softmax::PassOutputs out;
  out.grad = grad;
  out.src = &src;
  softmax::dispatch(pb, out);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal
