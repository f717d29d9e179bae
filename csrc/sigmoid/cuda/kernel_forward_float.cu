// The forward tile-pair kernels for float accumulation (see sigmoid/cuda/kernel.cuh, sigmoid/cuda/kernel_launch.cuh).
#include "sigmoid/cuda/kernel_launch.cuh"

SYMFOCAL_TILE_PAIRS(kForward, float, DefaultShape);
