#include "softmax/problem.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "sigmoid/math.h"

namespace symfocal {

namespace {

Mode parse_softmax_mode(std::string_view s) {
  if (s == "sum") return Mode::kSum;
  if (s == "average") return Mode::kAverage;
  if (s == "pair") return Mode::kPair;
  if (s == "upper") return Mode::kUpper;
  if (s == "none") return Mode::kNone;
  TORCH_CHECK_VALUE(false, "symfocal: mode must be one of 'sum', 'average', 'pair', 'upper', 'none', got '",
                    std::string(s), "'");
}

Normalize parse_normalize(std::string_view s) {
  if (s == "cells") return Normalize::kCells;
  if (s == "sample") return Normalize::kSample;
  TORCH_CHECK_VALUE(false, "symfocal: normalize must be 'cells' or 'sample', got '", std::string(s), "'");
}

BinTarget bin_target_of(at::ScalarType st) {
  switch (st) {
    case at::kByte: return BinTarget::kUInt8;
    case at::kInt: return BinTarget::kInt32;
    case at::kLong: return BinTarget::kInt64;
    default:
      TORCH_CHECK_TYPE(at::isFloatingType(st), "symfocal: target must hold bin indices (uint8, int32, int64) or "
                       "soft distributions (a floating dtype), got ", st);
      return BinTarget::kSoft;
  }
}

}  // namespace

PreparedSoftmaxCall prepare_softmax(const at::Tensor& logits, const at::Tensor& target,
                                    const std::optional<at::Tensor>& alpha, const std::optional<at::Tensor>& lengths,
                                    const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight,
                                    SYMFOCAL_SOFTMAX_OPTION_PARAMS,
                                    const std::optional<at::Tensor>& normalizer) {
  TORCH_CHECK_VALUE(logits.dim() >= 3 && logits.size(-2) == logits.size(-3),
                    "symfocal: logits must have shape [..., L, L, C], got ", logits.sizes());
  const int64_t bins = logits.size(-1);
  TORCH_CHECK_VALUE(bins >= 2 && bins <= kMaxBins, "symfocal: the number of bins C must be in [2, ", kMaxBins,
                    "], got ", bins);
  TORCH_CHECK_VALUE(gamma >= 0.0 && std::isfinite(gamma), "symfocal: gamma must be >= 0, got ", gamma);
  TORCH_CHECK_VALUE(label_smoothing >= 0.0 && label_smoothing < 1.0,
                    "symfocal: label_smoothing must be in [0, 1), got ", label_smoothing);
  TORCH_CHECK_VALUE(min_separation >= 0, "symfocal: min_separation must be >= 0, got ", min_separation);
  TORCH_CHECK_VALUE(target.device() == logits.device(), "symfocal: target is on ", target.device(),
                    " but logits are on ", logits.device());

  Params params = parse_params("average", std::nullopt, gamma, 1.0, label_smoothing, min_separation, 0.0, "l1",
                               1.0, reduction, "cells");
  params.mode = parse_softmax_mode(mode);
  params.has_ignore_index = ignore_index.has_value();
  params.ignore_index = static_cast<double>(ignore_index.value_or(0));

  const at::Tensor logits_cells = logits.select(-1, 0);
  PreparedCall cells = prepare_cells(logits_cells, lengths, mask, weight, params);
  PreparedSoftmaxCall call;
  call.keep_alive = std::move(cells.keep_alive);
  call.keep_alive.push_back(logits_cells);
  SoftmaxProblem& pb = call.pb;
  pb.cells = cells.pb;
  pb.bins = static_cast<int32_t>(bins);
  pb.logits_bin_stride = logits.stride(-1);
  pb.normalize = parse_normalize(normalize);
  pb.target_kind = bin_target_of(target.scalar_type());

  at::Tensor target_cells = target;
  if (pb.target_kind == BinTarget::kSoft) {
    TORCH_CHECK_VALUE(target.sizes() == logits.sizes(), "symfocal: soft target must have the shape of logits ",
                      logits.sizes(), ", got ", target.sizes());
    target_cells = target.select(-1, 0);
    call.keep_alive.push_back(target_cells);
    pb.target_bin_stride = target.stride(-1);
    pb.cells.target_dtype = dtype_of(target.scalar_type());
    TORCH_CHECK_VALUE(!params.has_ignore_index, "symfocal: ignore_index needs a target of bin indices, not soft "
                      "distributions (drop such cells with mask instead)");
  } else {
    TORCH_CHECK_VALUE(target.sizes() == logits_cells.sizes(), "symfocal: target of bin indices must have shape ",
                      logits_cells.sizes(), " (logits without the bins), got ", target.sizes());
  }
  if (logits.numel() != 0) pb.cells.target = map_view(target_cells, call.keep_alive);

  if (alpha.has_value()) {
    TORCH_CHECK_VALUE(alpha->dim() == 1 && alpha->size(0) == bins && alpha->scalar_type() == at::kDouble &&
                          alpha->device() == logits.device(),
                      "symfocal: alpha must be a float64 tensor of shape [", bins, "] on ", logits.device(),
                      ", got ", alpha->scalar_type(), " ", alpha->sizes(), " on ", alpha->device());
    call.keep_alive.push_back(alpha->contiguous());
    pb.alpha = call.keep_alive.back().data_ptr<double>();
  }
  if (normalizer.has_value()) {
    TORCH_CHECK_VALUE(pb.cells.params.reduction == Reduction::kMean && pb.normalize == Normalize::kCells,
                      "symfocal: normalizer replaces the count of reduction 'mean' with normalize 'cells'");
    PreparedCall cells_call{pb.cells, std::move(call.keep_alive)};
    attach_normalizer(cells_call, logits, normalizer);
    pb.cells = cells_call.pb;
    call.keep_alive = std::move(cells_call.keep_alive);
  }
  return call;
}

}  // namespace symfocal
