// The sf_* primitives of sigmoid/math.h for ATen's SIMD vectors, declared
// before sigmoid/math.h so that its templates find them; then the math itself.
#pragma once

#include <ATen/cpu/vec/vec.h>

namespace symfocal {

using at::vec::Vectorized;

template <typename T>
inline Vectorized<T> sf_exp(const Vectorized<T>& x) {
  return x.exp_u20();  // arguments are <= 0 here: 20-ulp-class accuracy is plenty
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

}  // namespace symfocal

#include "sigmoid/math.h"
