// The backward tile-pair kernels for double accumulation (see tile_pair_kernel.cuh, tile_pairs_launch.cuh).
#include "tile_pairs_launch.cuh"

SYMFOCAL_TILE_PAIRS(kBackward, double, DefaultShape);
