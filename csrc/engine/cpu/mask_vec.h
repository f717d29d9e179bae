// Sixteen float lanes in an AVX-512 register whose comparisons give a mask register: the value
// type of the binary streaming loop (sigmoid/cpu/stream_impl.h) on AVX-512. ATen's
// Vectorized<float> returns a comparison as a vector of all-ones lanes and turns it back into a
// mask inside every blend: two instructions a select (vpmovm2d, vpcmpeqd) that this type does
// not spend; in the hot loop of mode none they were about one instruction in seven. The math is
// sigmoid/math.h's, unchanged: this type only supplies its operators and sf_* primitives, with
// ATen's semantics (quiet ordered comparisons, a maximum that propagates NaN, exp_u20).
//
// Included by vec_math.h; only where the translation unit is compiled for AVX-512.
#pragma once

#include <ATen/cpu/vec/vec.h>
#include <immintrin.h>

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {
// A namespace of its own: its sf_* overloads, found by argument-dependent lookup, must not hide
// vec_math.h's for ATen's vectors from the kernels in the enclosing namespace.
namespace mask_vec {

struct Mask16 {
  __mmask16 k;
};

struct MaskVec {
  __m512 v;

  MaskVec() = default;
  MaskVec(__m512 x) : v(x) {}
  explicit MaskVec(const at::vec::Vectorized<float>& x) : v(x) {}
  explicit MaskVec(double s) : v(_mm512_set1_ps(static_cast<float>(s))) {}
  explicit MaskVec(float s) : v(_mm512_set1_ps(s)) {}
  explicit MaskVec(int s) : v(_mm512_set1_ps(static_cast<float>(s))) {}

  static constexpr int size() { return 16; }
  // The first `count` lanes of p; the others 0 (never read past p + count).
  static MaskVec loadu(const float* p, int count = 16) {
    return count >= 16 ? MaskVec(_mm512_loadu_ps(p)) : MaskVec(_mm512_maskz_loadu_ps(lanes(count), p));
  }
  void store(float* p, int count = 16) const {
    if (count >= 16) {
      _mm512_storeu_ps(p, v);
    } else {
      _mm512_mask_storeu_ps(p, lanes(count), v);
    }
  }
  // 1 where the bool byte p[c] is true, else 0, over the first `count` lanes (0 in the others).
  static MaskVec load_bool(const uint8_t* p, int count = 16) {
    const __m128i bytes = count >= 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                      : _mm_maskz_loadu_epi8(lanes(count), p);
    return _mm512_maskz_mov_ps(_mm_test_epi8_mask(bytes, bytes), _mm512_set1_ps(1.0f));
  }
  // b in the first `count` lanes, a in the others (Vectorized::set's meaning).
  static MaskVec set(const MaskVec& a, const MaskVec& b, int count) {
    return _mm512_mask_blend_ps(lanes(count), a.v, b.v);
  }
  static __mmask16 lanes(int count) { return static_cast<__mmask16>((1u << count) - 1u); }
};

inline MaskVec operator+(const MaskVec& a, const MaskVec& b) { return _mm512_add_ps(a.v, b.v); }
inline MaskVec operator-(const MaskVec& a, const MaskVec& b) { return _mm512_sub_ps(a.v, b.v); }
inline MaskVec operator*(const MaskVec& a, const MaskVec& b) { return _mm512_mul_ps(a.v, b.v); }
inline MaskVec operator/(const MaskVec& a, const MaskVec& b) { return _mm512_div_ps(a.v, b.v); }
inline Mask16 operator==(const MaskVec& a, const MaskVec& b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
inline Mask16 operator>(const MaskVec& a, const MaskVec& b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
inline Mask16 operator>=(const MaskVec& a, const MaskVec& b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ)}; }
inline Mask16 operator<(const MaskVec& a, const MaskVec& b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline Mask16 operator<=(const MaskVec& a, const MaskVec& b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }

// Found by argument-dependent lookup from sigmoid/math.h's templates.
inline MaskVec sf_select(const Mask16& c, const MaskVec& a, const MaskVec& b) {
  return _mm512_mask_blend_ps(c.k, b.v, a.v);
}
// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln 2 / 2, ln 2 / 2] (ln 2 in two parts,
// Cephes' expf, so that r is exact to float rounding), exp(r) by Cephes' degree-7 polynomial (about 1
// ulp), and 2^n applied by vscalefps, which needs no integer exponent arithmetic and no clamp: 12
// instructions against exp_u20's 19. As exp_u20, results below the smallest normal float (x <
// ln FLT_MIN) are 0, so that no denormal reaches the arithmetic after it; NaN stays NaN.
inline MaskVec sf_exp(const MaskVec& x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x.v, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x.v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
  const __mmask16 normal = _mm512_cmp_ps_mask(x.v, _mm512_set1_ps(-87.3365478515625f), _CMP_NLT_UQ);
  return _mm512_maskz_scalef_ps(normal, y, n);
}
inline MaskVec sf_log(const MaskVec& x) { return MaskVec(at::vec::Vectorized<float>(x.v).log()); }
inline MaskVec sf_abs(const MaskVec& x) { return _mm512_abs_ps(x.v); }
inline MaskVec sf_max(const MaskVec& a, const MaskVec& b) {  // NaN if either is NaN, as at::vec::maximum
  const __mmask16 unordered = _mm512_cmp_ps_mask(a.v, b.v, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(unordered, _mm512_max_ps(a.v, b.v), _mm512_set1_ps(NAN));
}
inline MaskVec sf_fmadd(const MaskVec& a, const MaskVec& b, const MaskVec& c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }
// math.h's `weighted` in one masked multiply: w * v where w != 0, else exactly 0.
inline MaskVec weighted(const MaskVec& w, const MaskVec& v) {
  return _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(w.v, _mm512_setzero_ps(), _CMP_NEQ_UQ), w.v, v.v);
}

inline MaskVec log1p_small(const MaskVec& e, const MaskVec&, const MaskVec&);  // vec_math.h

}  // namespace mask_vec
using mask_vec::MaskVec;
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal
