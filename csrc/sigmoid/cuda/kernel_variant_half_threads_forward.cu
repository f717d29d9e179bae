// The HalfThreadsShape forward kernels of variants.h (float accumulation), in a build with
// SYMFOCAL_CUDA_VARIANTS only (`make gpu-check`); a file each, so that they compile side by side.
#include "sigmoid/cuda/kernel_launch.cuh"

#if defined(SYMFOCAL_CUDA_VARIANTS)
SYMFOCAL_TILE_PAIRS(kForward, float, HalfThreadsShape);
#endif
