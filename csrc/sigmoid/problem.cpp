#include "sigmoid/problem.h"

#include <ATen/ATen.h>

#include <cmath>

#include "sigmoid/math.h"

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

Normalize parse_normalize(std::string_view s) {
  if (s == "cells") return Normalize::kCells;
  if (s == "positives") return Normalize::kPositives;
  if (s == "sample") return Normalize::kSample;
  TORCH_CHECK_VALUE(false, "symfocal: normalize must be one of 'cells', 'positives', 'sample', got '",
                    std::string(s), "'");
}

}  // namespace

Params parse_params(std::string_view mode, std::optional<double> alpha, double gamma,
                    double pos_weight, double label_smoothing, int64_t min_separation,
                    double symmetry_weight, std::string_view penalty, double huber_delta,
                    std::string_view reduction, std::string_view normalize,
                    std::optional<double> ignore_index) {
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
  p.normalize = parse_normalize(normalize);
  p.has_ignore_index = ignore_index.has_value();
  p.ignore_index = ignore_index.value_or(0.0);
  TORCH_CHECK_VALUE(std::isfinite(p.ignore_index), "symfocal: ignore_index must be finite or None, got ",
                    p.ignore_index);
  return p;
}

PreparedCall prepare(const at::Tensor& logits, const at::Tensor& target,
                     const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                     const std::optional<at::Tensor>& weight, const Params& params, const std::optional<at::Tensor>& normalizer,
                     const std::optional<at::Tensor>& channel_alpha,
                     const std::optional<at::Tensor>& channel_pos_weight) {
  TORCH_CHECK_VALUE(target.sizes() == logits.sizes(), "symfocal: target must have the shape of logits ",
                    logits.sizes(), ", got ", target.sizes());
  TORCH_CHECK_VALUE(target.device() == logits.device(), "symfocal: target is on ", target.device(),
                    " but logits are on ", logits.device());
  PreparedCall call = prepare_cells(logits, lengths, mask, weight, params);
  call.pb.target_dtype = dtype_of(target.scalar_type());
  if (logits.numel() != 0) call.pb.target = map_view(target, call.keep_alive);
  if (normalizer.has_value()) {
    TORCH_CHECK_VALUE(params.reduction == Reduction::kMean && params.normalize != Normalize::kSample,
                      "symfocal: normalizer replaces the count of reduction 'mean' with normalize 'cells' or "
                      "'positives'");
    attach_normalizer(call, logits, normalizer);
  }
  const int64_t channels = logits.dim() >= 3 ? logits.size(-3) : 1;
  auto per_channel = [&](const std::optional<at::Tensor>& values, const char* name) -> const double* {
    if (!values.has_value()) return nullptr;
    TORCH_CHECK_VALUE(logits.dim() >= 3 && values->dim() == 1 && values->size(0) == channels &&
                          values->scalar_type() == at::kDouble && values->device() == logits.device(),
                      "symfocal: per-channel ", name, " must be a float64 tensor of shape [C] = [", channels,
                      "] (logits [..., C, L, L]) on ", logits.device(), ", got ", values->scalar_type(), " ",
                      values->sizes(), " on ", values->device());
    call.keep_alive.push_back(values->contiguous());
    return call.keep_alive.back().data_ptr<double>();
  };
  call.pb.channel_alpha = per_channel(channel_alpha, "alpha");
  call.pb.channel_pos_weight = per_channel(channel_pos_weight, "pos_weight");
  call.pb.channels = channels;
  return call;
}

}  // namespace symfocal
