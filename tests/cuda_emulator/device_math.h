// The device's float math for the emulated kernels, with an error model: each
// result of a CUDA function or intrinsic the kernels use is moved by the largest error the
// CUDA C++ Programming Guide documents for it, in a direction that depends
// on the argument (deterministic, so results stay bitwise reproducible). A
// formula that is accurate only with an exact exp or log fails the float32
// comparisons against the float64 reference here, as it would on a GPU.
// Included by emulator.cpp before any kernel header (sigmoid/math.h picks the
// SYMFOCAL_DEVICE_* macros up).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace sf_emu {

// On by default; tests turn it off to see that it changes results at all.
inline bool intrinsic_error = true;

inline uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// +1 or -1 from the argument's bits (a mixing hash, so neighbours differ).
inline int error_sign(float x) {
  uint32_t h = bits_of(x) * 0x9E3779B1u;
  h ^= h >> 15;
  return (h & 1u) ? 1 : -1;
}

// y moved by `ulps` units in the last place, towards +inf for sign +1;
// 0, infinities and NaN are left alone.
inline float move_ulps(float y, int ulps, int sign) {
  if (y == 0.0f || !std::isfinite(y)) return y;
  const float towards = (sign > 0) ? INFINITY : -INFINITY;
  for (int k = 0; k < ulps; ++k) y = std::nextafter(y, towards);
  return y;
}

// __expf: at most 2 + floor(1.173 |x|) ulp.
inline float expf_intrinsic(float x) {
  const float y = static_cast<float>(std::exp(static_cast<double>(x)));
  if (!intrinsic_error) return y;
  return move_ulps(y, 2 + static_cast<int>(std::floor(1.173 * std::fabs(static_cast<double>(x)))), error_sign(x));
}

// __logf: at most 2^-21.41 absolute for x in [0.5, 2], else 3 ulp.
inline float logf_intrinsic(float x) {
  const double exact = std::log(static_cast<double>(x));
  if (!intrinsic_error) return static_cast<float>(exact);
  if (x >= 0.5f && x <= 2.0f) return static_cast<float>(exact + error_sign(x) * std::exp2(-21.41));
  return move_ulps(static_cast<float>(exact), 3, error_sign(x));
}

// logf: at most 1 ulp.
inline float logf_device(float x) {
  const float y = static_cast<float>(std::log(static_cast<double>(x)));
  return intrinsic_error ? move_ulps(y, 1, error_sign(x)) : y;
}

}  // namespace sf_emu

#define SYMFOCAL_DEVICE_EXPF(x) ::sf_emu::expf_intrinsic(x)
#define SYMFOCAL_DEVICE_LOGF(x) ::sf_emu::logf_intrinsic(x)
#define SYMFOCAL_DEVICE_LOGF_ACCURATE(x) ::sf_emu::logf_device(x)
