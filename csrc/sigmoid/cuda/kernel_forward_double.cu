// The forward tile-pair kernels for double accumulation (see sigmoid/cuda/kernel.cuh, sigmoid/cuda/kernel_launch.cuh).
#include "sigmoid/cuda/kernel_launch.cuh"

SYMFOCAL_TILE_PAIRS(kForward, double, DefaultShape);
