// The formulas of the softmax focal loss over bins (SPEC.md, "Distogram
// heads"), written once for both kernels, as sigmoid/math.h is for the binary
// loss: templates over `float` / `double` (CUDA, one bin a lane) and
// at::vec::Vectorized (CPU, engine/cpu/vec_math.h declares its primitives first).
//
// For one cell with logits z over C bins, p = softmax(z), lp = log p and a
// target distribution t (smoothed):
//   loss     = -sum_c t_c alpha_c (1 - p_c)^gamma lp_c = -sum_c t_c alpha_c phi_c
//   d loss / d z_k = p_k A - t_k alpha_k F_k,   A = sum_c t_c alpha_c F_c
// with F_c = d phi_c / d lp_c along the softmax (below). The loss is linear in
// t, so the targets that meet one softmax (two cells' in mode sum, average and
// pair) are summed, weights included, before the gradient is formed once.
#pragma once

#include <cmath>

#include "sigmoid/math.h"
#include "softmax/types.h"

namespace symfocal {

// 1 - p as -expm1(log p): accurate where p is close to 1, where 1 - p cancels.
// (expm1f is CUDA's full-precision function, 1 ulp; no fast intrinsic exists.)
SYMFOCAL_HOST_DEVICE float sf_expm1(float x) { return ::expm1f(x); }
SYMFOCAL_HOST_DEVICE double sf_expm1(double x) { return ::expm1(x); }

// phi = (1 - p)^gamma lp and F = (1 - p)^gamma (1 - gamma p lp / (1 - p)) of one bin,
// from lp = log p <= 0 and p. lp / (1 - p) tends to -1 as p -> 1 and is taken as -1
// where 1 - p == 0 (p == 1 exactly), so 0 < gamma < 1 never meets 0 * inf; where
// p -> 0, p lp -> 0 (exactly 0 where p == 0: a logit of -inf). The factor (1 - p)^gamma is an exact product for gamma 1 and 2.
template <GammaKind G, typename V>
SYMFOCAL_HOST_DEVICE void bin_focal_factors(const V& lp, const V& p, const V& gamma, V& phi, V& F) {
  const V zero(0.0), one(1.0);
  if (G == GammaKind::kZero) {
    phi = lp;
    F = one;
    return;
  }
  const V q = zero - sf_expm1(lp);
  const V ratio = sf_select(q > zero, lp / q, zero - one);
  V mod;
  if (G == GammaKind::kOne) {
    mod = q;
  } else if (G == GammaKind::kTwo) {
    mod = q * q;
  } else {
    mod = sf_exp(gamma * sf_log(q));  // q == 0: exp(-inf) == 0
  }
  phi = mod * lp;
  F = mod * (one - gamma * weighted(p, ratio));  // a bin at -inf: p == 0, lp / (1 - p) == -inf
}

// The reduced loss from the per-sample statistics (rows [batch, kNumSampleStats]:
// loss sums and cell counts filled in), which also gets each sample's
// kSampleScale. Summed in sample order: the same value on every device and for
// every thread count. A sample or a batch with no valid cell adds 0, never NaN.
//   normalize cells:  mean = sum of losses / number of valid cells (or / *normalizer, if given)
//   normalize sample: mean = mean over the samples of (sample's sum / its cells)
//   reduction sum:    the sum of losses (cells) or of the samples' means (sample)
SYMFOCAL_HOST_DEVICE double reduce_samples(double* rows, int64_t batch, Reduction reduction, Normalize normalize,
                                           const double* normalizer) {
  const bool mean = reduction != Reduction::kSum;
  if (normalize == Normalize::kCells) {
    double loss = 0.0, cells = 0.0;
    for (int64_t b = 0; b < batch; ++b) {
      loss += rows[b * kNumSampleStats + kSampleLoss];
      cells += rows[b * kNumSampleStats + kSampleCells];
    }
    const double divisor = normalizer != nullptr ? *normalizer : cells;
    const double scale = !mean ? 1.0 : (divisor > 0.0 ? 1.0 / divisor : 0.0);
    for (int64_t b = 0; b < batch; ++b) rows[b * kNumSampleStats + kSampleScale] = scale;
    return loss * scale;
  }
  const double per_sample = mean && batch > 0 ? 1.0 / static_cast<double>(batch) : 1.0;
  double total = 0.0;
  for (int64_t b = 0; b < batch; ++b) {
    double* row = rows + b * kNumSampleStats;
    const double inv_cells = row[kSampleCells] > 0.0 ? 1.0 / row[kSampleCells] : 0.0;
    total += row[kSampleLoss] * inv_cells;
    row[kSampleScale] = inv_cells * per_sample;
  }
  return total * per_sample;
}

}  // namespace symfocal
