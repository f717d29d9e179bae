// The formulas of SPEC.md, written once for both kernels.
//
// Every function is a template over the value type V: `float` or `double` in
// the CUDA kernels (one cell a thread), at::vec::Vectorized<float|double> in
// the CPU kernels (engine/cpu/vec_math.h declares the vector overloads of the
// sf_* primitives before including this file). The formulas only use
// + - * /, comparisons and the primitives below.
#pragma once

#include <cmath>

#include "engine/types.h"

namespace symfocal {

// ---- scalar primitives -----------------------------------------------------
// On the GPU the float exp and log are CUDA's fast intrinsics, whose errors
// (CUDA C++ Programming Guide, "Intrinsic Functions") are:
//   __expf(x): at most 2 + floor(1.173 |x|) ulp. Its arguments here are -|z|
//     and gamma log(1 - p_t): a relative error below about 1.5e-5 where the
//     result is still a normal float, and of 2.4e-6 for |x| <= 16.
//   __logf(x): at most 2^-21.41 absolute for x in [0.5, 2], else 3 ulp. Used
//     only for log(1 - p_t) in the general-gamma factor, where an absolute
//     error of the log is a relative one of the factor.
// log1p(e) of the softplus needs a relative error, and __logf(1 + e) has an
// absolute one: 3.5e-7 / e relative, 40 % at |z| = 14. It takes the
// full-precision logf (1 ulp) instead: sf_log_accurate. (log1pf, as accurate,
// costs 18 more registers a thread in the tile-pair kernels, measured with
// nvcc 13.0 for sm_90: 96 against 78 in the forward, one block an SM fewer.)
// tests/cuda_emulator defines the SYMFOCAL_DEVICE_* macros itself, with each
// function's documented error, to run the same choices on the CPU.
#if defined(__CUDA_ARCH__)
#define SYMFOCAL_DEVICE_EXPF(x) __expf(x)
#define SYMFOCAL_DEVICE_LOGF(x) __logf(x)
#define SYMFOCAL_DEVICE_LOGF_ACCURATE(x) logf(x)
#endif
#if defined(SYMFOCAL_DEVICE_EXPF)
SYMFOCAL_HOST_DEVICE float sf_exp(float x) { return SYMFOCAL_DEVICE_EXPF(x); }
SYMFOCAL_HOST_DEVICE float sf_log(float x) { return SYMFOCAL_DEVICE_LOGF(x); }
SYMFOCAL_HOST_DEVICE float sf_log_accurate(const float& x) { return SYMFOCAL_DEVICE_LOGF_ACCURATE(x); }
#else
SYMFOCAL_HOST_DEVICE float sf_exp(float x) { return std::exp(x); }
SYMFOCAL_HOST_DEVICE float sf_log(float x) { return std::log(x); }
#endif
SYMFOCAL_HOST_DEVICE double sf_exp(double x) { return ::exp(x); }
SYMFOCAL_HOST_DEVICE double sf_log(double x) { return ::log(x); }
// (After every scalar sf_log: a template finds only the overloads declared before it.)
// A log with a relative error of a few ulp: sf_log itself but for the device's float.
template <typename V>
SYMFOCAL_HOST_DEVICE V sf_log_accurate(const V& x) {
  return sf_log(x);
}
SYMFOCAL_HOST_DEVICE float sf_abs(float x) { return x < 0.0f ? -x : x; }
SYMFOCAL_HOST_DEVICE double sf_abs(double x) { return x < 0.0 ? -x : x; }
SYMFOCAL_HOST_DEVICE float sf_max(float a, float b) { return a > b ? a : b; }
SYMFOCAL_HOST_DEVICE double sf_max(double a, double b) { return a > b ? a : b; }
SYMFOCAL_HOST_DEVICE float sf_select(bool c, float a, float b) { return c ? a : b; }
SYMFOCAL_HOST_DEVICE double sf_select(bool c, double a, double b) { return c ? a : b; }

// w * v, and exactly 0 wherever w == 0, even where v is inf or NaN: a term of weight 0 (a cell that
// does not count, a target of 0, a bin no target meets) never reads into a result (SPEC.md,
// "Non-finite logits"). Also the limits at an infinite logit: 0 * softplus(inf) is the 0 of t = 0.
template <typename V>
SYMFOCAL_HOST_DEVICE V weighted(const V& w, const V& v) {
  return sf_select(w == V(0.0), V(0.0), w * v);
}

// ---- the focal term of one cell ----------------------------------------------

// The options of the focal term, broadcast once into the value type.
template <typename V>
struct FocalCoefs {
  V alpha, one_minus_alpha, gamma, pos_weight;
  V hard_pos, hard_neg;  // focal_hard's c for t = 1 and t = 0: pos_weight a_1 and a_0
  bool has_alpha;
  explicit SYMFOCAL_HOST_DEVICE FocalCoefs(const Params& p)
      : alpha(V(p.alpha)),
        one_minus_alpha(V(1.0 - p.alpha)),
        gamma(V(p.gamma)),
        pos_weight(V(p.pos_weight)),
        hard_pos(p.has_alpha ? pos_weight * alpha : pos_weight),
        hard_neg(p.has_alpha ? one_minus_alpha : V(1.0)),
        has_alpha(p.has_alpha) {}
};

// What FL(z, .) needs of the logit alone: computed once per logit and shared
// by the targets it meets (two in modes average and pair).
template <typename V>
struct LogitTerms {
  V p, q;                          // sigmoid(z), 1 - sigmoid(z)
  V softplus_pos, softplus_neg;    // -log(1 - p), -log p
};

// log1p(e) for e in (0, 1], given u = 1 + e and r = 1 / u: log(u) with the
// rounding of u = 1 + e undone, to a few ulp relative.
template <typename V>
SYMFOCAL_HOST_DEVICE V log1p_small(const V& e, const V& u, const V& r) {
  return sf_log_accurate(u) - ((u - V(1.0)) - e) * r;
}

// Finite for every finite z: sigmoid and its complement both come from
// e = exp(-|z|) in (0, 1], so neither cancels to 0 early and nothing
// overflows; log p and log(1 - p) are -softplus(-z) and -softplus(z), with
// log1p(e) accurate for small e (no epsilon clamp).
template <typename V>
SYMFOCAL_HOST_DEVICE LogitTerms<V> logit_terms(const V& z) {
  const V zero(0.0), one(1.0);
  const V e = sf_exp(zero - sf_abs(z));
  const V u = one + e;
  const V r = one / u;
  const auto nonneg = z >= zero;
  LogitTerms<V> lt;
  lt.p = sf_select(nonneg, r, e * r);
  lt.q = sf_select(nonneg, e * r, r);
  const V log1p_e = log1p_small(e, u, r);
  lt.softplus_pos = sf_max(z, zero) + log1p_e;
  lt.softplus_neg = sf_max(zero - z, zero) + log1p_e;
  return lt;
}

// FL(z, t) and dFL/dz from the logit's terms and the (already smoothed)
// target t, for every gamma >= 0:
//   d/dz (1 - p_t)^gamma = gamma (1 - p_t)^(gamma - 1) (1 - 2t) p (1 - p)
// is formed as gamma (1 - p_t)^gamma / (1 - p_t) * ..., and taken as 0 where
// 1 - p_t == 0 (then p (1 - p) == 0 too), so 0 < gamma < 1 never meets inf * 0.
// At z = +-inf every product that meets softplus(+-inf) = inf has a factor that is exactly 0 where
// the limit is finite (a target of 0 or 1, the derivative p (1 - p) of the modulating factor):
// `weighted` takes those as 0, which gives the limits of the loss (0 or +inf) and of its gradient.
template <GammaKind G, typename V>
SYMFOCAL_HOST_DEVICE void focal_from(const LogitTerms<V>& lt, const V& t, const FocalCoefs<V>& k, V& loss,
                                     V& dloss) {
  const V zero(0.0), one(1.0), two(2.0);
  const V one_minus_t = one - t;
  const V wt = k.pos_weight * t;
  const V ce = weighted(wt, lt.softplus_neg) + weighted(one_minus_t, lt.softplus_pos);
  const V dce = one_minus_t * lt.p - wt * lt.q;
  const V a_t = k.has_alpha ? k.alpha * t + k.one_minus_alpha * one_minus_t : one;

  if (G == GammaKind::kZero) {
    loss = weighted(a_t, ce);
    dloss = a_t * dce;
    return;
  }
  const V m = lt.p * one_minus_t + lt.q * t;  // 1 - p_t
  const V dm = (one - two * t) * lt.p * lt.q;  // d(1 - p_t)/dz
  V mod, dmod;                                 // (1 - p_t)^gamma and its derivative
  if (G == GammaKind::kOne) {
    mod = m;
    dmod = dm;
  } else if (G == GammaKind::kTwo) {
    mod = m * m;
    dmod = two * m * dm;
  } else {
    mod = sf_exp(k.gamma * sf_log(m));  // m == 0 gives exp(-inf) == 0
    dmod = k.gamma * dm * sf_select(m > zero, mod / m, zero);
  }
  loss = weighted(a_t * mod, ce);
  dloss = a_t * (mod * dce + weighted(dmod, ce));
}

// FL(z, t) and dFL/dz for logit z and (already smoothed) target t.
template <GammaKind G, typename V>
SYMFOCAL_HOST_DEVICE void focal_term(const V& z, const V& t, const FocalCoefs<V>& k, V& loss, V& dloss) {
  focal_from<G>(logit_terms(z), t, k, loss, dloss);
}

// FL(z, t) and dFL/dz for a hard target t in {0, 1} (bool targets without label smoothing), through
// the margin s = z for t = 1, -z for t = 0: p_t = sigmoid(s), 1 - p_t = sigmoid(-s) and
// CE = c softplus(-s) with c = a_t (pos_weight for t = 1), so
//   FL = c (1 - p_t)^gamma softplus(-s),
//   dFL/ds = -c (1 - p_t)^gamma ((1 - p_t) + gamma p_t softplus(-s)),
// the same values as focal_term with fewer operations: no division by 1 - p_t, and for a general gamma
// log(1 - p_t) = -softplus(s) = -(max(s, 0) + log1p(e)) is already at hand (no second log). At
// s = +-inf the products that meet softplus(-s) = inf have a factor exactly 0 (`weighted`), as there.
template <GammaKind G, typename V>
SYMFOCAL_HOST_DEVICE void focal_hard(const V& z, const V& t, const FocalCoefs<V>& k, V& loss, V& dloss) {
  const V zero(0.0), one(1.0);
  const auto positive = t > V(0.5);
  const V s = sf_select(positive, z, zero - z);
  const V e = sf_exp(zero - sf_abs(z));
  const V u = one + e;
  const V r = one / u;
  const auto right = s >= zero;
  const V m = sf_select(right, e * r, r);    // 1 - p_t
  const V p_t = sf_select(right, r, e * r);
  const V log1p_e = log1p_small(e, u, r);
  const V ce = sf_select(right, zero, zero - s) + log1p_e;  // softplus(-s) = max(-s, 0) + log1p(e) = -log p_t
  const V c = sf_select(positive, k.hard_pos, k.hard_neg);
  V mod;  // (1 - p_t)^gamma
  if (G == GammaKind::kZero) {
    mod = one;
  } else if (G == GammaKind::kOne) {
    mod = m;
  } else if (G == GammaKind::kTwo) {
    mod = m * m;
  } else {
    mod = sf_exp(zero - k.gamma * (sf_max(s, zero) + log1p_e));
  }
  const V cmod = c * mod;
  loss = weighted(cmod, ce);
  const V dlds = G == GammaKind::kZero ? zero - c * m : zero - cmod * (m + weighted(k.gamma * p_t, ce));
  dloss = sf_select(positive, dlds, zero - dlds);
}

// ---- one unordered pair of cells (i, j) and (j, i) ---------------------------
//
// xa = x_ij, xb = x_ji, ta = y_ij, tb = y_ji; wa, wb weigh the loss terms of
// the two cells (validity times the gradient scale). Returns the weighted
// loss of each cell and the gradient of wa*l_ij + wb*l_ji with respect to
// xa and xb: in modes average and pair a logit collects from both cells. A
// term of weight 0 is exactly 0 (`weighted`): in modes none and upper a cell
// that does not count is never read, whatever its logit holds.
template <Mode M, GammaKind G, typename V>
SYMFOCAL_HOST_DEVICE void pair_focal(const V& xa, const V& xb, const V& ta, const V& tb, const V& wa,
                                     const V& wb, const FocalCoefs<V>& k, V& la, V& lb, V& ga,
                                     V& gb) {
  const V half(0.5);
  if (M == Mode::kAverage) {
    const LogitTerms<V> s = logit_terms((xa + xb) * half);
    V fa, da, fb, db;
    focal_from<G>(s, ta, k, fa, da);
    focal_from<G>(s, tb, k, fb, db);
    la = weighted(wa, fa);
    lb = weighted(wb, fb);
    ga = half * (weighted(wa, da) + weighted(wb, db));
    gb = ga;
  } else if (M == Mode::kPair) {
    const LogitTerms<V> a = logit_terms(xa), b = logit_terms(xb);
    V f_aa, d_aa, f_ba, d_ba, f_bb, d_bb, f_ab, d_ab;  // f_<logit><target>
    focal_from<G>(a, ta, k, f_aa, d_aa);
    focal_from<G>(b, ta, k, f_ba, d_ba);
    focal_from<G>(b, tb, k, f_bb, d_bb);
    focal_from<G>(a, tb, k, f_ab, d_ab);
    la = half * weighted(wa, f_aa + f_ba);
    lb = half * weighted(wb, f_bb + f_ab);
    ga = half * (weighted(wa, d_aa) + weighted(wb, d_ab));
    gb = half * (weighted(wa, d_ba) + weighted(wb, d_bb));
  } else {  // none, upper: each cell on its own
    V fa, da, fb, db;
    focal_term<G>(xa, ta, k, fa, da);
    focal_term<G>(xb, tb, k, fb, db);
    la = weighted(wa, fa);
    lb = weighted(wb, fb);
    ga = weighted(wa, da);
    gb = weighted(wb, db);
  }
}

// ---- the symmetry penalty rho(d), d = x_ij - x_ji ------------------------------
template <typename V>
SYMFOCAL_HOST_DEVICE void penalty_term(const V& d, Penalty kind, const V& delta, V& rho, V& drho) {
  const V zero(0.0), one(1.0), half(0.5), two(2.0);
  const V ad = sf_abs(d);
  // sign(d), with 0 at d == 0 (the subgradient SPEC.md asks for in l1).
  const V sign = sf_select(d > zero, one, sf_select(d < zero, zero - one, zero));
  if (kind == Penalty::kL1) {
    rho = ad;
    drho = sign;
  } else if (kind == Penalty::kL2) {
    rho = d * d;
    drho = two * d;
  } else {
    const auto quadratic = ad <= delta;
    rho = sf_select(quadratic, half * d * d, delta * (ad - half * delta));
    drho = sf_select(quadratic, d, delta * sign);
  }
}

// ignore_index (SPEC.md, "Inputs"): a raw target equal to it drops its cell as a mask would. Returns
// the cell's mask factor (0 if dropped, else 1) and reads the dropped target as 0, so that the
// math of the dropped cell stays finite (a target of -1 would make 1 - p_t negative).
template <typename V>
SYMFOCAL_HOST_DEVICE V drop_ignored(const Params& p, V& t) {
  const V zero(0.0), one(1.0);
  if (!p.has_ignore_index) return one;
  const auto ignored = t == V(p.ignore_index);
  t = sf_select(ignored, zero, t);
  return sf_select(ignored, zero, one);
}

// Label smoothing: t <- t (1 - eps) + eps / 2, its coefficients formed once.
template <typename V>
struct TargetSmoothing {
  V keep, shift;
  explicit SYMFOCAL_HOST_DEVICE TargetSmoothing(double eps) : keep(V(1.0 - eps)), shift(V(0.5 * eps)) {}
  SYMFOCAL_HOST_DEVICE V operator()(const V& t) const { return t * keep + shift; }
};

SYMFOCAL_HOST_DEVICE GammaKind gamma_kind_of(double gamma) {
  if (gamma == 0.0) return GammaKind::kZero;
  if (gamma == 1.0) return GammaKind::kOne;
  if (gamma == 2.0) return GammaKind::kTwo;
  return GammaKind::kGeneral;
}

// The focal options of sample b: with per-channel alpha or pos_weight, those of its channel.
SYMFOCAL_HOST_DEVICE Params params_of_sample(const Problem& pb, int64_t b) {
  Params p = pb.params;
  if (pb.channel_alpha != nullptr || pb.channel_pos_weight != nullptr) {
    const int64_t c = b % pb.channels;
    if (pb.channel_alpha != nullptr) {
      p.has_alpha = true;
      p.alpha = pb.channel_alpha[c];
    }
    if (pb.channel_pos_weight != nullptr) p.pos_weight = pb.channel_pos_weight[c];
  }
  return p;
}

// The positive mass of the valid cells' targets, from the mass the kernels sum:
// that of the smoothed targets t (1 - eps) + eps / 2 over `cells` cells.
SYMFOCAL_HOST_DEVICE double positive_mass(double smoothed_mass, double cells, double eps) {
  return eps == 0.0 ? smoothed_mass : (smoothed_mass - 0.5 * eps * cells) / (1.0 - eps);
}

// d loss / d (focal sum) for normalize cells and positives (SPEC.md, "Reductions"):
// 1 / the divisor, or 0 where the divisor is not > 0 (never NaN). s[kTargetSum]
// already holds the positive mass.
SYMFOCAL_HOST_DEVICE double focal_scale_of(const double* s, const Params& p, const double* normalizer) {
  if (p.reduction != Reduction::kMean) return 1.0;
  double divisor = s[kCellCount];
  if (normalizer != nullptr) {
    divisor = *normalizer;
  } else if (p.normalize == Normalize::kPositives) {
    divisor = s[kTargetSum] > 1.0 ? s[kTargetSum] : 1.0;  // RetinaNet's max(1, positives)
  }
  return divisor > 0.0 ? 1.0 / divisor : 0.0;
}

// The penalty's share of a mean/sum reduction; a zero pair count gives 0.
SYMFOCAL_HOST_DEVICE double reduced_penalty(const double* s, const Params& p) {
  if (p.reduction == Reduction::kSum) return p.symmetry_weight * s[kPenaltySum];
  return s[kPairCount] > 0 ? p.symmetry_weight * s[kPenaltySum] / s[kPairCount] : 0.0;
}

// The final value of a mean/sum reduction with normalize cells or positives:
// s holds the sums of all partials; fills in the positive mass and kFocalScale.
SYMFOCAL_HOST_DEVICE double reduce_stats(double* s, const Params& p, const double* normalizer) {
  s[kTargetSum] = positive_mass(s[kTargetSum], s[kCellCount], p.label_smoothing);
  s[kFocalScale] = focal_scale_of(s, p, normalizer);
  return s[kFocalSum] * s[kFocalScale] + reduced_penalty(s, p);
}

// The same with normalize sample, from each sample's sums (rows, [batch][kNumPartials]):
// the mean over the samples of each one's focal mean (reduction sum: their sum),
// plus the penalty over all pairs. Fills in s's totals and each sample's scale at
// s[kNumStats + b]. Summed in sample order; a sample without valid cells adds 0.
SYMFOCAL_HOST_DEVICE double reduce_sample_rows(const double* rows, int64_t batch, double* s, const Params& p) {
  for (int k = 0; k < kNumPartials; ++k) s[k] = 0.0;
  const double per_sample = p.reduction == Reduction::kMean && batch > 0 ? 1.0 / static_cast<double>(batch) : 1.0;
  double focal = 0.0;
  for (int64_t b = 0; b < batch; ++b) {
    const double* row = rows + b * kNumPartials;
    for (int k = 0; k < kNumPartials; ++k) s[k] += row[k];
    const double inv_cells = row[kCellCount] > 0.0 ? 1.0 / row[kCellCount] : 0.0;
    focal += row[kFocalSum] * inv_cells;
    s[kNumStats + b] = inv_cells * per_sample;
  }
  s[kTargetSum] = positive_mass(s[kTargetSum], s[kCellCount], p.label_smoothing);
  s[kFocalScale] = 0.0;  // each sample has its own
  return focal * per_sample + reduced_penalty(s, p);
}

// d loss / d (focal term of a cell of `sample`) and d loss / d rho(pair), per
// unit of the incoming gradient, for the mean/sum reductions.
SYMFOCAL_HOST_DEVICE void reduction_scales(const double* s, const Params& p, int64_t sample,
                                           double& focal_scale, double& penalty_scale) {
  focal_scale = p.normalize == Normalize::kSample ? s[kNumStats + sample] : s[kFocalScale];
  if (p.reduction == Reduction::kMean) {
    penalty_scale = s[kPairCount] > 0 ? p.symmetry_weight / s[kPairCount] : 0.0;
  } else {
    penalty_scale = p.symmetry_weight;
  }
}

}  // namespace symfocal
