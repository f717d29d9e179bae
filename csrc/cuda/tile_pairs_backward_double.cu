// The backward tile-pair kernels for double accumulation (see tile_pair_kernel.cuh).
#include "tile_pair_kernel.cuh"

SYMFOCAL_TILE_PAIRS(kBackward, double);
