// Modes none and upper without a symmetry penalty: no cell meets its mirror, so the map is read
// row by row in the order memory holds it, with no tile buffers and no transposes. Mode upper
// reads only j >= i; every other cell of a row is written 0 (a loss map's or a gradient's).
//
// A work item is kStreamRows rows of one sample (engine/cpu/kernels.h counts them), fixed by the
// shape alone: each item's sums are formed in one order whatever the thread count, and the
// finalize adds them in item order, so results are bitwise the same on 1 or 64 threads.
// Within a row, columns go in chunks of kStreamChunk (buffers that stay in L1); each chunk's
// vector sums are added into double per lane in a fixed order.
//
// Included by kernels_impl.h (inside the instruction set's namespace), after Store and Scales.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {

constexpr int kStreamChunk = 512;

// The loop's value type: vec_math.h's LaneVec (mask-register lanes for float on AVX-512).
template <typename acc_t>
using StreamVec = LaneVec<acc_t>;

template <typename acc_t>
struct alignas(64) StreamBuf {
  acc_t x[kStreamChunk], t[kStreamChunk];
  acc_t count[kStreamChunk];  // what each cell adds to the count: validity x scale (x mask, ...)
  acc_t term[kStreamChunk];   // what multiplies its term: count x the weight map
  acc_t other[kStreamChunk];  // a mask, weight or incoming gradient row before it is applied
  acc_t out[kStreamChunk];    // results in acc_t for an output of another dtype
};

// Cells (i, j0 .. j0 + n) of sample b's map as acc_t: the map itself where it holds acc_t at unit
// column stride, else widened into buf.
template <typename acc_t>
const acc_t* read_row(const MapView& v, DType dt, int64_t sample_offset, int64_t i, int64_t j0, int n, acc_t* buf) {
  const acc_t* direct = nullptr;
  visit_dtype(dt, [&](auto tag) {
    using src_t = decltype(tag);
    const src_t* row = static_cast<const src_t*>(v.data) + sample_offset + i * v.row_stride + j0 * v.col_stride;
    if (v.col_stride == 1) {
      if constexpr (std::is_same_v<src_t, acc_t>) {
        direct = row;
      } else {
        at::vec::convert(row, buf, n);
      }
    } else {
      for (int c = 0; c < n; ++c) buf[c] = static_cast<acc_t>(row[c * v.col_stride]);
    }
  });
  return direct != nullptr ? direct : buf;
}

// Cells [j0, j1) of an output row zeroed (the cells that do not count).
template <typename out_t>
void zero_cells(out_t* row, int64_t j0, int64_t j1) {
  if (j1 > j0) std::memset(static_cast<void*>(row + j0), 0, static_cast<size_t>(j1 - j0) * sizeof(out_t));
}

// The columns of row i that count before masks: [lo, hi) pieces, at most two (mode none with a
// min_separation band around the diagonal).
struct RowSpans {
  int64_t lo[2], hi[2];
  int n = 0;
};

template <Mode M>
RowSpans row_spans(int64_t i, int64_t len, int64_t k) {
  RowSpans s;
  if (i >= len) return s;
  auto add = [&](int64_t lo, int64_t hi) {
    lo = std::max<int64_t>(lo, 0);
    hi = std::min(hi, len);
    if (hi > lo) {
      s.lo[s.n] = lo;
      s.hi[s.n] = hi;
      ++s.n;
    }
  };
  if (M == Mode::kUpper) {
    add(i + std::max<int64_t>(k, 0), len);  // j >= i and j - i >= k
  } else if (k <= 0) {
    add(0, len);
  } else {
    add(0, i - k + 1);  // j <= i - k
    add(i + k, len);    // j >= i + k
  }
  return s;
}

// What one stream call needs besides the problem: the scales of backward (1 in a forward), whether
// the cells need per-cell weights, and where results go.
template <typename acc_t>
struct StreamCall {
  Scales<acc_t> scales;
  const double* sample_scales = nullptr;  // normalize sample in backward: each sample's focal scale
  double grad_value = 1.0;                // times the incoming gradient
  acc_t grad_store_scale = 1;             // a stored gradient times this (the sums are not)
  void* out = nullptr;                    // [batch, L, L] contiguous in the logits dtype, or null
  bool per_cell = false;                  // a mask, ignore_index, weight map or gradient map
};

// One chunk of a row: columns [j0, j0 + n), all within one span.
template <GammaKind G, bool Hard, bool PerCell, Store S, typename acc_t>
void stream_chunk(const Problem& pb, const StreamCall<acc_t>& call, const FocalCoefs<StreamVec<acc_t>>& k,
                  acc_t scale, const int64_t* offsets, int64_t b, int64_t i, int64_t j0, int n, acc_t* out_row,
                  StreamBuf<acc_t>& buf, double* sums) {
  using Vec = StreamVec<acc_t>;
  constexpr int W = Vec::size();
  const Params& prm = pb.params;
  const acc_t* x = read_row(pb.logits, pb.logits_dtype, offsets[0], i, j0, n, buf.x);
  // Hard bool targets at unit stride on AVX-512: read as bytes in the loop (MaskVec::load_bool).
  const uint8_t* t_bool = nullptr;
  if constexpr (Hard && std::is_same_v<Vec, MaskVecOrNone>) {
    if (pb.target.col_stride == 1 && !prm.has_ignore_index)
      t_bool = static_cast<const uint8_t*>(pb.target.data) + offsets[1] + i * pb.target.row_stride + j0;
  }
  const acc_t* t = t_bool != nullptr ? nullptr : read_row(pb.target, pb.target_dtype, offsets[1], i, j0, n, buf.t);
  const acc_t* count = nullptr;
  const acc_t* term = nullptr;
  if constexpr (PerCell) {
    std::fill(buf.count, buf.count + n, scale);
    if (pb.has_mask) {
      const acc_t* m = read_row(pb.mask, DType::kUInt8, offsets[2], i, j0, n, buf.other);
      for (int c = 0; c < n; ++c) buf.count[c] = m[c] != acc_t(0) ? buf.count[c] : acc_t(0);
    }
    if (prm.has_ignore_index) {  // the dropped cells' targets read as 0, to stay finite
      if (t != buf.t) std::copy(t, t + n, buf.t);
      for (int o = 0; o < n; o += W) {
        const int cnt = std::min(W, n - o);
        Vec tv = Vec::loadu(buf.t + o, cnt);
        const Vec keep = drop_ignored(prm, tv);
        tv.store(buf.t + o, cnt);
        (Vec::loadu(buf.count + o, cnt) * keep).store(buf.count + o, cnt);
      }
      t = buf.t;
    }
    if (call.scales.grad_map != nullptr) {  // reduction none: each cell's own incoming gradient
      const acc_t* g = read_row(*call.scales.grad_map, call.scales.grad_dtype, offsets[3], i, j0, n, buf.other);
      for (int c = 0; c < n; ++c) buf.count[c] *= g[c];
    }
    count = buf.count;
    term = buf.count;
    if (pb.has_weight) {
      const DType wt = pb.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
      const acc_t* u = read_row(pb.weight, wt, offsets[4], i, j0, n, buf.other);
      for (int c = 0; c < n; ++c) buf.term[c] = buf.count[c] * u[c];
      term = buf.term;
    }
  }
  if (!Hard && prm.label_smoothing != 0.0) {  // after ignore_index, which reads the raw target
    const TargetSmoothing<acc_t> smooth(prm.label_smoothing);
    for (int c = 0; c < n; ++c) buf.t[c] = smooth(t[c]);
    t = buf.t;
  }
  acc_t* out = nullptr;
  if constexpr (S != Store::kNothing) out = out_row != nullptr ? out_row + j0 : buf.out;
  // Without per-cell weights every cell has the same weight, and its gradient's weight is formed once.
  const Vec uniform(scale), grad_scale(call.grad_store_scale), uniform_grad = uniform * grad_scale;
  Vec s_focal(0), s_cells(0), s_target(0);
  auto run = [&](auto load_target) {
    for (int o = 0; o < n; o += W) {
      const int cnt = std::min(W, n - o);
      const Vec xv = Vec::loadu(x + o, cnt), tv = load_target(o, cnt);
      Vec wc, wt;
      if constexpr (PerCell) {
        wc = Vec::loadu(count + o, cnt);  // 0 past the chunk's end
        wt = term == count ? wc : Vec::loadu(term + o, cnt);
      } else {
        wc = cnt == W ? uniform : Vec::set(Vec(0), uniform, cnt);
        wt = wc;
      }
      Vec l, d;
      if constexpr (Hard) {
        focal_hard<G>(xv, tv, k, l, d);
      } else {
        focal_term<G>(xv, tv, k, l, d);
      }
      l = weighted(wt, l);
      if constexpr (S == Store::kGrad) {
        if constexpr (PerCell) {
          (weighted(wt, d) * grad_scale).store(out + o, cnt);
        } else {  // (the lanes past the chunk's end are not stored)
          weighted(uniform_grad, d).store(out + o, cnt);
        }
      }
      if constexpr (S == Store::kLossMap) l.store(out + o, cnt);
      s_focal = s_focal + l;
      s_cells = s_cells + wc;
      s_target = s_target + wc * tv;
    }
  };
  if constexpr (Hard && std::is_same_v<Vec, MaskVecOrNone>) {
    if (t_bool != nullptr) {  // bool targets read as they are, no widened copy
      run([&](int o, int cnt) { return Vec::load_bool(t_bool + o, cnt); });
    } else {
      run([&](int o, int cnt) { return Vec::loadu(t + o, cnt); });
    }
  } else {
    run([&](int o, int cnt) { return Vec::loadu(t + o, cnt); });
  }
  const Vec* acc[3] = {&s_focal, &s_cells, &s_target};
  const int slot[3] = {kFocalSum, kCellCount, kTargetSum};
  for (int a = 0; a < 3; ++a) {
    alignas(64) acc_t lanes[W];
    acc[a]->store(lanes);
    double total = 0;
    for (int l = 0; l < W; ++l) total += static_cast<double>(lanes[l]);
    sums[slot[a]] += total;
  }
}

// Rows [r0, r1) of sample b: sums into `sums` (kNumPartials, zeroed here), results into call.out.
template <Mode M, GammaKind G, bool Hard, bool PerCell, Store S, typename acc_t>
void stream_rows(const Problem& pb, const StreamCall<acc_t>& call, int64_t b, int64_t r0, int64_t r1,
                 StreamBuf<acc_t>& buf, double* sums) {
  for (int s = 0; s < kNumPartials; ++s) sums[s] = 0.0;
  const int64_t L = pb.L, len = sample_length(pb, b);
  const int64_t offsets[5] = {pb.logits.batch_offset(b), pb.target.batch_offset(b),
                              pb.has_mask ? pb.mask.batch_offset(b) : 0,
                              call.scales.grad_map != nullptr ? call.scales.grad_map->batch_offset(b) : 0,
                              pb.has_weight ? pb.weight.batch_offset(b) : 0};
  const FocalCoefs<StreamVec<acc_t>> k(params_of_sample(pb, b));
  const acc_t scale = call.sample_scales != nullptr
                          ? static_cast<acc_t>(call.sample_scales[b] * call.grad_value)
                          : call.scales.focal;
  for (int64_t i = r0; i < r1; ++i) {
    const RowSpans spans = row_spans<M>(i, len, pb.params.min_separation);
    visit_dtype(pb.logits_dtype, [&](auto tag) {
      using out_t = decltype(tag);
      out_t* row = S == Store::kNothing ? nullptr : static_cast<out_t*>(call.out) + (b * L + i) * L;
      acc_t* direct = nullptr;
      if constexpr (std::is_same_v<out_t, acc_t>) direct = row;
      int64_t done = 0;  // output cells before `done` are written
      for (int p = 0; p < spans.n; ++p) {
        if (row != nullptr) zero_cells(row, done, spans.lo[p]);
        for (int64_t j = spans.lo[p]; j < spans.hi[p]; j += kStreamChunk) {
          const int n = static_cast<int>(std::min<int64_t>(kStreamChunk, spans.hi[p] - j));
          stream_chunk<G, Hard, PerCell, S>(pb, call, k, scale, offsets, b, i, j, n, direct, buf, sums);
          if constexpr (S != Store::kNothing && !std::is_same_v<out_t, acc_t>) at::vec::convert(buf.out, row + j, n);
        }
        done = spans.hi[p];
      }
      if (row != nullptr) zero_cells(row, done, L);
    });
  }
}

template <typename acc_t, Mode M, GammaKind G, bool Hard, bool PerCell, Store S>
void stream_all(const Problem& pb, const StreamCall<acc_t>& call, double* partials) {
  const int64_t blocks = stream_row_blocks(pb.L);
  const int64_t items = pb.batch * blocks;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, kStreamRows * pb.L));
  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    StreamBuf<acc_t> buf;
    double scratch[kNumPartials];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, r0 = (item % blocks) * kStreamRows;
      double* sums = partials != nullptr ? partials + item * kNumPartials : scratch;
      stream_rows<M, G, Hard, PerCell, S>(pb, call, b, r0, std::min(r0 + kStreamRows, pb.L), buf, sums);
    }
  });
}

// The instantiation for the call's options: hard targets (bool, no smoothing) take focal_hard in
// float; per-cell weights only where something varies from cell to cell.
template <typename acc_t, Mode M, GammaKind G, Store S>
void stream(const Problem& pb, const StreamCall<acc_t>& call, double* partials) {
  const bool hard = pb.target_dtype == DType::kBool && pb.params.label_smoothing == 0.0;
  auto run = [&](auto hard_tag, auto per_cell_tag) {
    stream_all<acc_t, M, G, decltype(hard_tag)::value, decltype(per_cell_tag)::value, S>(pb, call, partials);
  };
  using Yes = std::true_type;
  using No = std::false_type;
  if constexpr (std::is_same_v<acc_t, float>) {
    if (hard) {
      call.per_cell ? run(Yes(), Yes()) : run(Yes(), No());
      return;
    }
  }
  call.per_cell ? run(No(), Yes()) : run(No(), No());
}

template <typename acc_t>
bool needs_per_cell(const Problem& pb, const Scales<acc_t>& s) {
  return pb.has_mask || pb.has_weight || pb.params.has_ignore_index || s.grad_map != nullptr;
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal
