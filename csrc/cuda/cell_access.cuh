#pragma once
// Reading and writing cells of any supported dtype as the accumulation type,
// four consecutive cells of a row at a time: one wide load or store (8 bytes
// of bfloat16, 16 of float32, 4 of bool) where the tensor's rows allow it,
// else one access per cell through the strides.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../symfocal.h"

// The host-emulation tests (tests/cuda_emulator) define this to check that
// every global access is in bounds and every wide access aligned.
#ifndef SYMFOCAL_CHECK_GLOBAL_ACCESS
#define SYMFOCAL_CHECK_GLOBAL_ACCESS(ptr, bytes, align) ((void)0)
#endif

namespace symfocal {
namespace cuda {
namespace detail {

constexpr int kVec = 4;  // consecutive cells of a row per thread and access

SYMFOCAL_HOST_DEVICE int element_size(DType dt) {
  switch (dt) {
    case DType::kFloat16:
    case DType::kBFloat16: return 2;
    case DType::kFloat32: return 4;
    case DType::kFloat64: return 8;
    default: return 1;  // bool, uint8
  }
}

// The alignment a wide access of kVec cells needs (double: two 16-byte halves).
SYMFOCAL_HOST_DEVICE int wide_alignment(DType dt) {
  const int bytes = kVec * element_size(dt);
  return bytes < 16 ? bytes : 16;
}

// Whether every group of kVec cells that starts at a column divisible by kVec
// can be read with one wide access: contiguous rows, strides that keep such
// groups aligned, and an aligned base. Evaluated on the host, once per call.
inline bool allows_wide_rows(const MapView& v, DType dt) {
  if (v.data == nullptr || v.col_stride != 1 || v.row_stride % kVec != 0) return false;
  for (int d = 0; d < v.nbatch; ++d)
    if (v.batch_stride[d] % kVec != 0) return false;
  return reinterpret_cast<uintptr_t>(v.data) % wide_alignment(dt) == 0;
}

// Which accesses of one call are wide (where a group lies wholly inside the map).
struct WideAccess {
  bool logits = false, target = false, mask = false, grad = false, out = false;
};

template <typename acc_t>
__device__ __forceinline__ acc_t load_as(const void* p, DType dt, int64_t off) {
  SYMFOCAL_CHECK_GLOBAL_ACCESS(static_cast<const char*>(p) + off * element_size(dt), element_size(dt), 1);
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
  SYMFOCAL_CHECK_GLOBAL_ACCESS(static_cast<char*>(p) + off * element_size(dt), element_size(dt), 1);
  switch (dt) {
    case DType::kFloat16: static_cast<__half*>(p)[off] = __float2half(static_cast<float>(v)); break;
    case DType::kBFloat16:
      static_cast<__nv_bfloat16*>(p)[off] = __float2bfloat16(static_cast<float>(v));
      break;
    case DType::kFloat32: static_cast<float*>(p)[off] = static_cast<float>(v); break;
    default: static_cast<double*>(p)[off] = static_cast<double>(v); break;
  }
}

__device__ __forceinline__ float half_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu)));
}
__device__ __forceinline__ float bfloat16_bits_to_float(uint32_t bits) {
  return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(bits & 0xffffu)));
}
__device__ __forceinline__ uint32_t half_bits(float v) { return __half_as_ushort(__float2half(v)); }
__device__ __forceinline__ uint32_t bfloat16_bits(float v) { return __bfloat16_as_ushort(__float2bfloat16(v)); }

// Cells off, off + step, ..., of which the first n (0..kVec) exist; the rest
// read as 0. One wide load when `wide` and the group is whole.
template <typename acc_t>
__device__ __forceinline__ void load_row4(const void* p, DType dt, int64_t off, int64_t step, bool wide, int n,
                                          acc_t v[kVec]) {
  if (wide && n == kVec) {
    const char* at = static_cast<const char*>(p) + off * element_size(dt);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(at, kVec * element_size(dt), wide_alignment(dt));
    switch (dt) {
      case DType::kFloat16:
      case DType::kBFloat16: {
        const uint2 raw = *reinterpret_cast<const uint2*>(at);
        const uint32_t w[2] = {raw.x, raw.y};
#pragma unroll
        for (int q = 0; q < kVec; ++q) {
          const uint32_t bits = w[q / 2] >> (16 * (q % 2));
          v[q] = static_cast<acc_t>(dt == DType::kFloat16 ? half_bits_to_float(bits) : bfloat16_bits_to_float(bits));
        }
        return;
      }
      case DType::kFloat32: {
        const float4 raw = *reinterpret_cast<const float4*>(at);
        v[0] = raw.x, v[1] = raw.y, v[2] = raw.z, v[3] = raw.w;
        return;
      }
      case DType::kFloat64: {
        const double2 a = reinterpret_cast<const double2*>(at)[0];
        const double2 b = reinterpret_cast<const double2*>(at)[1];
        v[0] = static_cast<acc_t>(a.x), v[1] = static_cast<acc_t>(a.y);
        v[2] = static_cast<acc_t>(b.x), v[3] = static_cast<acc_t>(b.y);
        return;
      }
      default: {  // bool, uint8
        const uint32_t raw = *reinterpret_cast<const uint32_t*>(at);
#pragma unroll
        for (int q = 0; q < kVec; ++q) v[q] = static_cast<acc_t>((raw >> (8 * q)) & 0xffu);
        return;
      }
    }
  }
#pragma unroll
  for (int q = 0; q < kVec; ++q) v[q] = q < n ? load_as<acc_t>(p, dt, off + q * step) : acc_t(0);
}

// Cells off .. off + kVec - 1 of a contiguous output, of which the first n exist.
template <typename acc_t>
__device__ __forceinline__ void store_row4(void* p, DType dt, int64_t off, bool wide, int n, const acc_t v[kVec]) {
  if (wide && n == kVec) {
    char* at = static_cast<char*>(p) + off * element_size(dt);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(at, kVec * element_size(dt), wide_alignment(dt));
    switch (dt) {
      case DType::kFloat16:
      case DType::kBFloat16: {
        uint32_t w[2] = {0, 0};
#pragma unroll
        for (int q = 0; q < kVec; ++q) {
          const float f = static_cast<float>(v[q]);
          w[q / 2] |= (dt == DType::kFloat16 ? half_bits(f) : bfloat16_bits(f)) << (16 * (q % 2));
        }
        *reinterpret_cast<uint2*>(at) = make_uint2(w[0], w[1]);
        return;
      }
      case DType::kFloat32:
        *reinterpret_cast<float4*>(at) = make_float4(static_cast<float>(v[0]), static_cast<float>(v[1]),
                                                     static_cast<float>(v[2]), static_cast<float>(v[3]));
        return;
      default:  // float64
        reinterpret_cast<double2*>(at)[0] = make_double2(static_cast<double>(v[0]), static_cast<double>(v[1]));
        reinterpret_cast<double2*>(at)[1] = make_double2(static_cast<double>(v[2]), static_cast<double>(v[3]));
        return;
    }
  }
#pragma unroll
  for (int q = 0; q < kVec; ++q)
    if (q < n) store_as(p, dt, off + q, v[q]);
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
