#pragma once
// Reading and writing cells of any supported dtype as the accumulation type,
// four consecutive cells of a row at a time: one wide load or store (8 bytes
// of bfloat16, 16 of float32, 4 of bool) where the tensor's rows allow it,
// two 2-cell accesses where they allow only that (an even L that is not a
// multiple of 4, say L = 1022), else one access per cell through the strides.
// The values are the same whichever way they are read.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/types.h"

// The host-emulation tests (tests/cuda_emulator) define this to check that
// every global access is in bounds and every wide access aligned.
#ifndef SYMFOCAL_CHECK_GLOBAL_ACCESS
#define SYMFOCAL_CHECK_GLOBAL_ACCESS(ptr, bytes, align) ((void)0)
#endif
// ... and this, after each __shared__ variable, to fill it with 0xFF bytes at
// the start of every block (a read of a cell no thread wrote then shows).
#ifndef SYMFOCAL_SHARED_DECLARED
#define SYMFOCAL_SHARED_DECLARED(var) ((void)0)
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
    default: return 1;  // bool, uint8, int8
  }
}

// The alignment an access of `cells` consecutive cells needs (4 float64
// cells: two 16-byte halves).
SYMFOCAL_HOST_DEVICE int access_alignment(DType dt, int cells) {
  const int bytes = cells * element_size(dt);
  return bytes < 16 ? bytes : 16;
}

// How many cells (kVec, 2 or 1) one access may cover for every group of kVec
// cells that starts at a column divisible by kVec: contiguous rows, strides
// that keep such groups (or their halves) aligned, and an aligned base.
// Evaluated on the host, once per call.
inline int access_width(const MapView& v, DType dt) {
  if (v.data == nullptr || v.col_stride != 1) return 1;
  for (int width = kVec; width > 1; width /= 2) {
    bool ok = v.row_stride % width == 0 &&
              reinterpret_cast<uintptr_t>(v.data) % static_cast<uintptr_t>(access_alignment(dt, width)) == 0;
    for (int d = 0; d < v.nbatch; ++d) ok = ok && v.batch_stride[d] % width == 0;
    if (ok) return width;
  }
  return 1;
}

// Cells per access of each tensor of one call (kVec, 2 or 1), where a group
// lies wholly inside the map; a group cut by the map's edge uses 2-cell
// accesses where its width allows.
struct WideAccess {
  int8_t logits = 1, target = 1, mask = 1, weight = 1, grad = 1, out = 1;
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
    case DType::kInt8: return static_cast<acc_t>(static_cast<const int8_t*>(p)[off]);
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

// A one-byte cell (bool, uint8, int8) from its bits.
template <typename acc_t>
__device__ __forceinline__ acc_t byte_value(uint32_t bits, DType dt) {
  return dt == DType::kInt8 ? static_cast<acc_t>(static_cast<int8_t>(bits)) : static_cast<acc_t>(bits);
}

// Cells off and off + 1 of a contiguous row, read with one access.
template <typename acc_t>
__device__ __forceinline__ void load_pair(const void* p, DType dt, int64_t off, acc_t v[2]) {
  const char* at = static_cast<const char*>(p) + off * element_size(dt);
  SYMFOCAL_CHECK_GLOBAL_ACCESS(at, 2 * element_size(dt), access_alignment(dt, 2));
  switch (dt) {
    case DType::kFloat16:
    case DType::kBFloat16: {
      const uint32_t raw = *reinterpret_cast<const uint32_t*>(at);
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const uint32_t bits = raw >> (16 * q);
        v[q] = static_cast<acc_t>(dt == DType::kFloat16 ? half_bits_to_float(bits) : bfloat16_bits_to_float(bits));
      }
      return;
    }
    case DType::kFloat32: {
      const float2 raw = *reinterpret_cast<const float2*>(at);
      v[0] = raw.x, v[1] = raw.y;
      return;
    }
    case DType::kFloat64: {
      const double2 raw = *reinterpret_cast<const double2*>(at);
      v[0] = static_cast<acc_t>(raw.x), v[1] = static_cast<acc_t>(raw.y);
      return;
    }
    default: {  // bool, uint8, int8
      const uint32_t raw = *reinterpret_cast<const uint16_t*>(at);
      v[0] = byte_value<acc_t>(raw & 0xffu, dt), v[1] = byte_value<acc_t>(raw >> 8, dt);
      return;
    }
  }
}

// Cells off, off + step, ..., of which the first n (0..kVec) exist; the rest
// read as 0. `width` cells an access (access_width; width > 1 means step 1).
template <typename acc_t>
__device__ __forceinline__ void load_row4(const void* p, DType dt, int64_t off, int64_t step, int width, int n,
                                          acc_t v[kVec]) {
  if (width == kVec && n == kVec) {
    const char* at = static_cast<const char*>(p) + off * element_size(dt);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(at, kVec * element_size(dt), access_alignment(dt, kVec));
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
      default: {  // bool, uint8, int8
        const uint32_t raw = *reinterpret_cast<const uint32_t*>(at);
#pragma unroll
        for (int q = 0; q < kVec; ++q) v[q] = byte_value<acc_t>((raw >> (8 * q)) & 0xffu, dt);
        return;
      }
    }
  }
  if (width > 1) {  // pairs (a group of 4 aligned for 4 cells is aligned for 2)
#pragma unroll
    for (int q = 0; q < kVec; q += 2) {
      if (q + 1 < n) {
        load_pair(p, dt, off + q, v + q);
      } else {
        v[q] = q < n ? load_as<acc_t>(p, dt, off + q) : acc_t(0);
        v[q + 1] = acc_t(0);
      }
    }
    return;
  }
#pragma unroll
  for (int q = 0; q < kVec; ++q) v[q] = q < n ? load_as<acc_t>(p, dt, off + q * step) : acc_t(0);
}

// Cells off and off + 1 of a contiguous output, written with one access.
template <typename acc_t>
__device__ __forceinline__ void store_pair(void* p, DType dt, int64_t off, const acc_t v[2]) {
  char* at = static_cast<char*>(p) + off * element_size(dt);
  SYMFOCAL_CHECK_GLOBAL_ACCESS(at, 2 * element_size(dt), access_alignment(dt, 2));
  switch (dt) {
    case DType::kFloat16:
    case DType::kBFloat16: {
      uint32_t w = 0;
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const float f = static_cast<float>(v[q]);
        w |= (dt == DType::kFloat16 ? half_bits(f) : bfloat16_bits(f)) << (16 * q);
      }
      *reinterpret_cast<uint32_t*>(at) = w;
      return;
    }
    case DType::kFloat32:
      *reinterpret_cast<float2*>(at) = make_float2(static_cast<float>(v[0]), static_cast<float>(v[1]));
      return;
    default:  // float64
      *reinterpret_cast<double2*>(at) = make_double2(static_cast<double>(v[0]), static_cast<double>(v[1]));
      return;
  }
}

// Cells off .. off + kVec - 1 of a contiguous output, of which the first n exist,
// `width` cells an access.
template <typename acc_t>
__device__ __forceinline__ void store_row4(void* p, DType dt, int64_t off, int width, int n, const acc_t v[kVec]) {
  if (width == kVec && n == kVec) {
    char* at = static_cast<char*>(p) + off * element_size(dt);
    SYMFOCAL_CHECK_GLOBAL_ACCESS(at, kVec * element_size(dt), access_alignment(dt, kVec));
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
  if (width > 1) {
#pragma unroll
    for (int q = 0; q < kVec; q += 2) {
      if (q + 1 < n) {
        store_pair(p, dt, off + q, v + q);
      } else if (q < n) {
        store_as(p, dt, off + q, v[q]);
      }
    }
    return;
  }
#pragma unroll
  for (int q = 0; q < kVec; ++q)
    if (q < n) store_as(p, dt, off + q, v[q]);
}

}  // namespace detail
}  // namespace cuda
}  // namespace symfocal
