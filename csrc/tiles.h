// Tile-pair enumeration and the cell rules of SPEC.md that do not depend on
// data (lengths, separation, the triangle of mode "upper"). Host and device.
#pragma once

#include <cmath>

#include "symfocal.h"

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

// Lengths and separation admit cell (i, j). Symmetric in (i, j).
SYMFOCAL_HOST_DEVICE bool admits(int64_t i, int64_t j, int64_t len, int64_t min_sep) {
  const int64_t sep = i > j ? i - j : j - i;
  return i < len && j < len && sep >= min_sep;
}

// Mode "upper" counts only j >= i.
SYMFOCAL_HOST_DEVICE bool in_triangle(Mode mode, int64_t i, int64_t j) {
  return mode != Mode::kUpper || j >= i;
}

}  // namespace symfocal
