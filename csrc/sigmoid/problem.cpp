#include "sigmoid/problem.h"

#include <ATen/ATen.h>

#include <cmath>

#include "sigmoid/math.h"
#include "engine/tiles.h"

namespace symfocal {

namespace {

Mode parse_mode(std::string_view s) {
  if (s == "average") return Mode::kAverage;
  if (s == "pair") return Mode::kPair;
  if (s == "upper") return Mode::kUpper;
  if (s == "none") return Mode::kNone;
  TORCH_CHECK_VALUE(false, "symfocal: mode must be one of 'average', 'pair', 'upper', 'none', got '",
                    std::string(s), "'");
}

Penalty parse_penalty(std::string_view s) {
  if (s == "l1") return Penalty::kL1;
  if (s == "l2") return Penalty::kL2;
  if (s == "huber") return Penalty::kHuber;
  TORCH_CHECK_VALUE(false, "symfocal: symmetry_penalty must be one of 'l1', 'l2', 'huber', got '",
                    std::string(s), "'");
}

Reduction parse_reduction(std::string_view s) {
  if (s == "mean") return Reduction::kMean;
  if (s == "sum") return Reduction::kSum;
  if (s == "none") return Reduction::kNone;
  TORCH_CHECK_VALUE(false, "symfocal: reduction must be one of 'mean', 'sum', 'none', got '",
                    std::string(s), "'");
}

}  // namespace

Params parse_params(std::string_view mode, std::optional<double> alpha, double gamma,
                    double pos_weight, double label_smoothing, int64_t min_separation,
                    double symmetry_weight, std::string_view penalty, double huber_delta,
                    std::string_view reduction) {
  Params p;
  p.mode = parse_mode(mode);
  p.has_alpha = alpha.has_value();
  p.alpha = alpha.value_or(0.0);
  TORCH_CHECK_VALUE(!p.has_alpha || (p.alpha >= 0.0 && p.alpha <= 1.0),
                    "symfocal: alpha must be in [0, 1] or None, got ", p.alpha);
  TORCH_CHECK_VALUE(gamma >= 0.0 && std::isfinite(gamma), "symfocal: gamma must be >= 0, got ", gamma);
  TORCH_CHECK_VALUE(pos_weight > 0.0 && std::isfinite(pos_weight),
                    "symfocal: pos_weight must be > 0, got ", pos_weight);
  TORCH_CHECK_VALUE(label_smoothing >= 0.0 && label_smoothing < 1.0,
                    "symfocal: label_smoothing must be in [0, 1), got ", label_smoothing);
  TORCH_CHECK_VALUE(min_separation >= 0, "symfocal: min_separation must be >= 0, got ", min_separation);
  TORCH_CHECK_VALUE(symmetry_weight >= 0.0 && std::isfinite(symmetry_weight),
                    "symfocal: symmetry_weight must be >= 0, got ", symmetry_weight);
  TORCH_CHECK_VALUE(huber_delta > 0.0 && std::isfinite(huber_delta),
                    "symfocal: huber_delta must be > 0, got ", huber_delta);
  p.gamma = gamma;
  p.gamma_kind = gamma_kind_of(gamma);
  p.pos_weight = pos_weight;
  p.label_smoothing = label_smoothing;
  p.min_separation = min_separation;
  p.symmetry_weight = symmetry_weight;
  p.penalty = parse_penalty(penalty);
  p.huber_delta = huber_delta;
  p.reduction = parse_reduction(reduction);
  return p;
}

DType dtype_of(at::ScalarType st) {
  switch (st) {
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kBool: return DType::kBool;
    case at::kByte: return DType::kUInt8;
    default: TORCH_CHECK_TYPE(false, "symfocal: unsupported dtype ", st);
  }
}

namespace {

MapView strided_view(const at::Tensor& t) {
  const int64_t nd = t.dim();
  MapView v;
  v.data = t.data_ptr();
  v.row_stride = t.stride(nd - 2);
  v.col_stride = t.stride(nd - 1);
  // Batch dims, outermost first; size-1 dims dropped, contiguous neighbours merged.
  std::vector<int64_t> sizes, strides;
  for (int64_t d = 0; d < nd - 2; ++d) {
    if (t.size(d) == 1) continue;
    if (!sizes.empty() && strides.back() == t.stride(d) * t.size(d)) {
      sizes.back() *= t.size(d);
      strides.back() = t.stride(d);
    } else {
      sizes.push_back(t.size(d));
      strides.push_back(t.stride(d));
    }
  }
  TORCH_CHECK(sizes.size() <= static_cast<size_t>(kMaxBatchDims),
              "symfocal: internal: too many batch dims after merging");
  v.nbatch = static_cast<int32_t>(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) {
    v.batch_size[d] = sizes[d];
    v.batch_stride[d] = strides[d];
  }
  return v;
}

}  // namespace

MapView map_view(const at::Tensor& t, std::vector<at::Tensor>& keep_alive) {
  int64_t distinct = 0;
  for (int64_t d = 0; d < t.dim() - 2; ++d) distinct += t.size(d) != 1;
  if (distinct <= kMaxBatchDims) return strided_view(t);
  keep_alive.push_back(t.contiguous());
  return strided_view(keep_alive.back());
}

PreparedCall prepare_cells(const at::Tensor& logits, const std::optional<at::Tensor>& lengths,
                           const std::optional<at::Tensor>& mask, const Params& params) {
  TORCH_CHECK_VALUE(logits.dim() >= 2 && logits.size(-1) == logits.size(-2),
                    "symfocal: logits must have shape [..., L, L], got ", logits.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(logits.scalar_type()),
                   "symfocal: logits must be float16, bfloat16, float32 or float64, got ",
                   logits.scalar_type());

  PreparedCall call;
  Problem& pb = call.pb;
  pb.params = params;
  pb.L = logits.size(-1);
  pb.batch = 1;
  for (int64_t d = 0; d < logits.dim() - 2; ++d) pb.batch *= logits.size(d);
  pb.logits_dtype = dtype_of(logits.scalar_type());
  if (logits.numel() == 0) return call;  // nothing is read
  pb.logits = map_view(logits, call.keep_alive);

  if (mask.has_value()) {
    TORCH_CHECK_TYPE(mask->scalar_type() == at::kBool || mask->scalar_type() == at::kByte,
                     "symfocal: mask must be bool or uint8, got ", mask->scalar_type());
    TORCH_CHECK_VALUE(mask->device() == logits.device(), "symfocal: mask is on ", mask->device(),
                      " but logits are on ", logits.device());
    pb.has_mask = true;
    pb.mask_dtype = dtype_of(mask->scalar_type());
    // Broadcast through stride 0: a shared [L, L] mask is never copied per sample.
    const at::Tensor expanded = mask->expand(logits.sizes());
    call.keep_alive.push_back(expanded);
    pb.mask = map_view(expanded, call.keep_alive);
  }

  if (lengths.has_value()) {
    TORCH_CHECK_TYPE(!at::isFloatingType(lengths->scalar_type()) && lengths->scalar_type() != at::kBool,
                     "symfocal: lengths must be an integer tensor, got ", lengths->scalar_type());
    TORCH_CHECK_VALUE(lengths->device() == logits.device(), "symfocal: lengths is on ",
                      lengths->device(), " but logits are on ", logits.device());
    const int64_t first = logits.dim() > 2 ? logits.size(0) : 1;
    TORCH_CHECK_VALUE(lengths->numel() == pb.batch || lengths->numel() == first,
                      "symfocal: lengths must have shape logits.shape[:-2] or logits.shape[:1], got ",
                      lengths->sizes());
    call.keep_alive.push_back(lengths->to(at::kLong).contiguous());
    pb.lengths = call.keep_alive.back().data_ptr<int64_t>();
    pb.lengths_div = lengths->numel() == pb.batch ? 1 : pb.batch / first;
  }
  return call;
}

PreparedCall prepare(const at::Tensor& logits, const at::Tensor& target,
                     const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                     const Params& params) {
  TORCH_CHECK_VALUE(target.sizes() == logits.sizes(), "symfocal: target must have the shape of logits ",
                    logits.sizes(), ", got ", target.sizes());
  TORCH_CHECK_VALUE(target.device() == logits.device(), "symfocal: target is on ", target.device(),
                    " but logits are on ", logits.device());
  PreparedCall call = prepare_cells(logits, lengths, mask, params);
  call.pb.target_dtype = dtype_of(target.scalar_type());
  if (logits.numel() != 0) call.pb.target = map_view(target, call.keep_alive);
  return call;
}

int64_t num_work_items(const Problem& pb) {
  if (pb.L == 0) return 0;
  return pb.batch * tile_pairs_per_sample(num_tiles(pb.L));
}

}  // namespace symfocal
