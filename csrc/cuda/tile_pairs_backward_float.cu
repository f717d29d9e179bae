// The backward tile-pair kernels for float accumulation (see tile_pair_kernel.cuh, tile_pairs_launch.cuh).
#include "tile_pairs_launch.cuh"

SYMFOCAL_TILE_PAIRS(kBackward, float, DefaultShape);
