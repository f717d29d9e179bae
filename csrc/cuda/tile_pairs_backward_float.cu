// The backward tile-pair kernels for float accumulation (see tile_pair_kernel.cuh).
#include "tile_pair_kernel.cuh"

SYMFOCAL_TILE_PAIRS(kBackward, float);
