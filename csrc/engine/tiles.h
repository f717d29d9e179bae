// Tile-pair enumeration and the cell rules of SPEC.md that do not depend on
// data (lengths, separation, the triangle of mode "upper"). Host and device.
#pragma once

#include <cmath>

#include "engine/types.h"

namespace symfocal {

// Tile pairs of one sample: (I, J) with I <= J < n, numbered row by row.
SYMFOCAL_HOST_DEVICE int64_t tile_pairs_per_sample(int64_t n) { return n * (n + 1) / 2; }

// Index of the first pair in tile row I.
SYMFOCAL_HOST_DEVICE int64_t tile_row_start(int64_t I, int64_t n) { return I * n - I * (I - 1) / 2; }

// Inverse of the numbering above: pair q of a sample -> (I, J).
SYMFOCAL_HOST_DEVICE void tile_pair_of(int64_t q, int64_t n, int64_t& I, int64_t& J) {
  const double d = 2.0 * static_cast<double>(n) + 1.0;
  int64_t row = static_cast<int64_t>((d - sqrt(d * d - 8.0 * static_cast<double>(q))) * 0.5);
  // The square root may be off by one either way near row boundaries.
  if (row < 0) row = 0;
  if (row > n - 1) row = n - 1;
  while (row > 0 && tile_row_start(row, n) > q) --row;
  while (row + 1 < n && tile_row_start(row + 1, n) <= q) ++row;
  I = row;
  J = row + (q - tile_row_start(row, n));
}

// Effective length of sample b: lengths clamped to [0, L] so that a bad value
// can never index out of bounds (validate=True reports it before we get here).
SYMFOCAL_HOST_DEVICE int64_t sample_length(const Problem& pb, int64_t b) {
  if (pb.lengths == nullptr) return pb.L;
  int64_t len = pb.lengths[b / pb.lengths_div];
  if (len < 0) len = 0;
  if (len > pb.L) len = pb.L;
  return len;
}

// Where tile pair `item` (over all samples) lies: sample b, the tile (I, J)
// starting at (i0, j0) with rows x cols cells inside the map, and the
// sample's effective length.
struct TileGeometry {
  int64_t b, i0, j0, len;
  int rows, cols;
  bool diagonal;
};

SYMFOCAL_HOST_DEVICE TileGeometry tile_geometry(const Problem& pb, int64_t item) {
  const int64_t n = num_tiles(pb.L);
  const int64_t per_sample = tile_pairs_per_sample(n);
  TileGeometry g;
  g.b = item / per_sample;
  int64_t I, J;
  tile_pair_of(item % per_sample, n, I, J);
  g.i0 = I * kTile;
  g.j0 = J * kTile;
  g.rows = static_cast<int>(pb.L - g.i0 < kTile ? pb.L - g.i0 : kTile);
  g.cols = static_cast<int>(pb.L - g.j0 < kTile ? pb.L - g.j0 : kTile);
  g.diagonal = I == J;
  g.len = sample_length(pb, g.b);
  return g;
}

// Lengths and separation admit cell (i, j). Symmetric in (i, j).
SYMFOCAL_HOST_DEVICE bool admits(int64_t i, int64_t j, int64_t len, int64_t min_sep) {
  const int64_t sep = i > j ? i - j : j - i;
  return i < len && j < len && sep >= min_sep;
}

// How many cells of an n x n map lengths, separation (|i - j| >= k) and the triangle admit:
// SPEC's N of one sample where no mask or ignore_index decides.
SYMFOCAL_HOST_DEVICE double admitted_cells(int64_t n, int64_t k, Mode mode) {
  if (n <= 0) return 0.0;
  const int64_t sep = k > 0 ? k : 0;
  if (mode == Mode::kUpper) {  // j - i >= sep: n - sep cells on the first diagonal counted, n - sep - 1 ...
    const int64_t m = n - sep;
    return m > 0 ? static_cast<double>(m) * static_cast<double>(m + 1) / 2.0 : 0.0;
  }
  if (sep == 0) return static_cast<double>(n) * static_cast<double>(n);
  const int64_t q = (sep < n ? sep : n) - 1;  // off-diagonals 1 .. q are too close
  const double band = static_cast<double>(n) + 2.0 * (static_cast<double>(q) * static_cast<double>(n) -
                                                       static_cast<double>(q) * static_cast<double>(q + 1) / 2.0);
  return static_cast<double>(n) * static_cast<double>(n) - band;
}

// Mode "upper" counts only j >= i.
SYMFOCAL_HOST_DEVICE bool in_triangle(Mode mode, int64_t i, int64_t j) {
  return mode != Mode::kUpper || j >= i;
}

}  // namespace symfocal
