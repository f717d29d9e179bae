// The sf_* primitives of sigmoid/math.h for ATen's SIMD vectors, declared
// before sigmoid/math.h so that its templates find them; then the math itself.
#pragma once

#include <ATen/cpu/vec/vec.h>

namespace symfocal {

using at::vec::Vectorized;

template <typename T>
inline Vectorized<T> sf_exp(const Vectorized<T>& x) {
  // Arguments are <= 0 here: 20-ulp-class accuracy is plenty. exp_u20 clamps its argument with
  // min/max, which turn a NaN into the clamp's bound: a NaN logit would come out finite (and, in the
  // hard-target formula, weighted by an exact 0). NaN stays NaN (SPEC.md, "Non-finite logits").
  return Vectorized<T>::blendv(x.exp_u20(), x, x != x);
}
template <typename T>
inline Vectorized<T> sf_log(const Vectorized<T>& x) {
  return x.log();
}
template <typename T>
inline Vectorized<T> sf_expm1(const Vectorized<T>& x) {
  return x.expm1();
}
template <typename T>
inline Vectorized<T> sf_abs(const Vectorized<T>& x) {
  return x.abs();
}
template <typename T>
inline Vectorized<T> sf_max(const Vectorized<T>& a, const Vectorized<T>& b) {
  return at::vec::maximum(a, b);
}
// `cond` is a comparison result: all bits set in the lanes where it holds.
template <typename T>
inline Vectorized<T> sf_select(const Vectorized<T>& cond, const Vectorized<T>& a,
                               const Vectorized<T>& b) {
  return Vectorized<T>::blendv(b, a, cond);
}

template <typename T>
inline Vectorized<T> sf_fmadd(const Vectorized<T>& a, const Vectorized<T>& b, const Vectorized<T>& c) {
  return at::vec::fmadd(a, b, c);
}

// log1p(e) for e in [0, 1], the softplus's log of every cell: inline (an out-of-line SLEEF call
// spills every live vector register around it), a polynomial on the reduced argument with no
// division. e <= sqrt(2) - 1: log1p(e) = P(e), e itself the argument, so small e keeps its relative
// accuracy; else log1p(e) = log(2) + P((e - 1) / 2), (1 + e) / 2 - 1 in [-0.293, 0]. P is Cephes'
// logf polynomial (log(1 + x) = x - x^2/2 + x^3 Q(x) on [sqrt(1/2) - 1, sqrt(2) - 1]), log(2) split
// in two so that the sum rounds once: at most 2 ulp, tested against float64 at the extremes
// (tests/test_cpu_math.py). V: ATen's Vectorized<float> or mask_vec.h's MaskVec.
template <typename V>
inline V log1p_poly(const V& e) {
  const V zero(0.0f), one(1.0f), half(0.5f);
  const auto upper = e > V(0.41421356237f);
  const V x = sf_select(upper, (e - one) * half, e);
  const V k = sf_select(upper, one, zero);
  V y(7.0376836292e-2f);
  y = sf_fmadd(y, x, V(-1.1514610310e-1f));
  y = sf_fmadd(y, x, V(1.1676998740e-1f));
  y = sf_fmadd(y, x, V(-1.2420140846e-1f));
  y = sf_fmadd(y, x, V(1.4249322787e-1f));
  y = sf_fmadd(y, x, V(-1.6668057665e-1f));
  y = sf_fmadd(y, x, V(2.0000714765e-1f));
  y = sf_fmadd(y, x, V(-2.4999993993e-1f));
  y = sf_fmadd(y, x, V(3.3333331174e-1f));
  const V z = x * x;
  y = y * x * z;
  y = sf_fmadd(k, V(-2.12194440e-4f), y);
  y = sf_fmadd(V(-0.5f), z, y);
  return sf_fmadd(k, V(0.693359375f), x + y);
}
// math.h's log1p_small(e, u, r) for float vectors: the polynomial (u and r, 1 + e and its
// reciprocal, are what the double version needs).
inline Vectorized<float> log1p_small(const Vectorized<float>& e, const Vectorized<float>&,
                                     const Vectorized<float>&) {
  return log1p_poly(e);
}

}  // namespace symfocal

#if defined(CPU_CAPABILITY_AVX512)
#include "engine/cpu/mask_vec.h"
namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {
namespace mask_vec {
inline MaskVec log1p_small(const MaskVec& e, const MaskVec&, const MaskVec&) { return log1p_poly(e); }
}  // namespace mask_vec
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal
#endif

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {
// The value type of the kernels' hot loops: mask_vec.h's MaskVec for float on AVX-512, ATen's
// Vectorized elsewhere (both serve sigmoid/math.h's formulas and the sf_* primitives).
template <typename acc_t>
struct Lanes {
  using type = Vectorized<acc_t>;
};
#if defined(CPU_CAPABILITY_AVX512)
template <>
struct Lanes<float> {
  using type = MaskVec;
};
using MaskVecOrNone = MaskVec;  // for code that only MaskVec serves
#else
using MaskVecOrNone = void;
#endif
template <typename acc_t>
using LaneVec = typename Lanes<acc_t>::type;
// The same lanes as ATen's vector (for its reductions and conversions).
template <typename T>
inline Vectorized<T> as_aten(const Vectorized<T>& v) {
  return v;
}
#if defined(CPU_CAPABILITY_AVX512)
inline Vectorized<float> as_aten(const MaskVec& v) { return Vectorized<float>(v.v); }
#endif
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal

#include "sigmoid/math.h"
