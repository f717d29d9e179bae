// The CUDA kernels' open design choices, as variants that a first run on a GPU
// times side by side (benchmarks/variants.py, run by `make gpu-check`). Each
// variant is the default with one choice changed; all give the same results
// (tests/test_cuda.py runs every one through the emulator). The default is
// always compiled; the others that need kernels of their own only in a build
// with SYMFOCAL_CUDA_VARIANTS=1 (`make gpu-check`), so that wheels stay small.
// Plain C++: module.cpp, launch.cu and the emulator include it.
#pragma once

#include <cstdint>
#include <cstring>

namespace symfocal {
namespace cuda {

enum class Variant : int32_t {
  kDefault = 0,
  kCellAccess,        // every cell read and written on its own (no 2- or 4-cell accesses)
  kSerialLoads,       // backward: the own tile loaded after the mirror is in shared memory
  kThreeBlocks,       // fp32: registers capped for 3 blocks an SM instead of 2
  kHalfThreads,       // 128 threads a tile pair, each two groups of 4 cells (3 blocks an SM)
  kOneBlockFinalize,  // the forward's partial sums added by one block, not in two levels
  kCount
};

struct VariantInfo {
  const char* name;
  const char* what;
  bool own_kernels;  // needs kernels of its own (compiled with SYMFOCAL_CUDA_VARIANTS only)
};

inline const VariantInfo& variant_info(Variant v) {
  static const VariantInfo info[] = {
      {"default", "4- or 2-cell accesses, both tiles' loads in flight, 2 blocks/SM, 256 threads, two-level sums",
       false},
      {"cell-access", "every access one cell", false},
      {"serial-loads", "backward loads the own tile after the mirror's barrier", true},
      {"three-blocks", "fp32 kernels bounded for 3 blocks/SM (80 registers a thread)", true},
      {"half-threads", "128 threads a tile pair, two 4-cell groups each, 3 blocks/SM", true},
      {"one-block-finalize", "the partial sums added by one block", false},
  };
  return info[static_cast<int>(v)];
}

// The variant called `name`, or kCount for none.
inline Variant variant_named(const char* name) {
  for (int i = 0; i < static_cast<int>(Variant::kCount); ++i)
    if (std::strcmp(variant_info(static_cast<Variant>(i)).name, name) == 0) return static_cast<Variant>(i);
  return Variant::kCount;
}

// Whether this build has what variant v needs.
inline bool variant_compiled(Variant v) {
#if defined(SYMFOCAL_CUDA_VARIANTS)
  return v != Variant::kCount;
#else
  return v != Variant::kCount && !variant_info(v).own_kernels;
#endif
}

// The variant the CUDA launches of this process use (launch.cu; default
// kDefault). set_variant returns false, changing nothing, for a variant this
// build lacks.
bool set_variant(Variant v);
Variant current_variant();

// Compile-time shapes of the tile-pair kernel. The distinct type names show in
// the kernels' mangled names (tests/test_cuda_build.py tells them apart).
struct DefaultShape {
  static constexpr int kThreads = 256;
  static constexpr bool kOverlapBackward = true;
  static constexpr int kMinBlocks = 2;  // fp32; fp64 always 1
  // Forward (nvcc 13.0, sm_90): 80 registers under this cap and no spills; without
  // it ptxas takes 96 since the fifth partial sum (the target mass), i.e. 2 blocks.
  static constexpr int kMinBlocksForward = 3;
};
struct SerialLoadsShape : DefaultShape {
  static constexpr bool kOverlapBackward = false;
};
struct ThreeBlocksShape : DefaultShape {
  static constexpr int kMinBlocks = 3;
};
struct HalfThreadsShape : DefaultShape {
  static constexpr int kThreads = 128;
  static constexpr int kMinBlocks = 3;
};

// What a variant changes on the host side of a launch.
inline bool uses_cell_access(Variant v) { return v == Variant::kCellAccess; }
inline bool uses_one_block_finalize(Variant v) { return v == Variant::kOneBlockFinalize; }

}  // namespace cuda
}  // namespace symfocal
