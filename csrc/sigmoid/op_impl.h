// The bodies of the two ops, shared by the devices. A Backend provides
//   Guard                  a type constructed from the device (makes it current)
//   static int64_t work_items(const Problem&);  rows of partial sums its forward writes
//   static int64_t scratch_rows(const Problem&, int64_t items);  rows of partials after the items'
//   static void forward(const Problem&, void* loss_map, double* partials,
//                       int64_t items, double* stats, void* loss_scalar);
//   static void backward(const Problem&, const GradSource&, void* grad);
// and allocates nothing itself: every output is made here.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "sigmoid/problem.h"

namespace symfocal {

#define SYMFOCAL_OPTION_PARAMS                                                                  \
  std::string_view mode, std::optional<double> alpha, double gamma, double pos_weight,       \
      double label_smoothing, int64_t min_separation, double symmetry_weight,                \
      std::string_view penalty, double huber_delta, std::string_view reduction,              \
      std::string_view normalize, std::optional<double> ignore_index
#define SYMFOCAL_OPTION_ARGS                                                                  \
  mode, alpha, gamma, pos_weight, label_smoothing, min_separation, symmetry_weight, penalty, \
      huber_delta, reduction, normalize, ignore_index

// How many float64 statistics a forward returns (engine/types.h's Stat, then one scale a
// sample with normalize sample).
inline int64_t num_stats(const Problem& pb) {
  return kNumStats + (pb.params.normalize == Normalize::kSample ? pb.batch : 0);
}

inline at::ScalarType loss_dtype_of(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// The outputs of a forward pass, allocated on the logits' device.
struct ForwardOutputs {
  at::Tensor partials, stats, loss_scalar, loss_map;
  ForwardOutputs(const at::Tensor& logits, const Problem& pb, int64_t items, int64_t scratch_rows) {
    const Params& params = pb.params;
    const auto dev = logits.options();
    partials = at::empty({items + scratch_rows, kNumPartials}, dev.dtype(at::kDouble));
    stats = at::empty({num_stats(pb)}, dev.dtype(at::kDouble));
    loss_scalar = at::empty({}, dev.dtype(loss_dtype_of(logits)));
    if (params.reduction == Reduction::kNone)
      loss_map = at::empty(logits.sizes(), dev.memory_format(at::MemoryFormat::Contiguous));
  }
  at::Tensor loss() const { return loss_map.defined() ? loss_map : loss_scalar; }
};

template <class Backend>
std::tuple<at::Tensor, at::Tensor> forward_op(const at::Tensor& logits, const at::Tensor& target,
                                              const std::optional<at::Tensor>& lengths,
                                              const std::optional<at::Tensor>& mask,
                                              const std::optional<at::Tensor>& weight,
                                              const std::optional<at::Tensor>& normalizer,
                                              const std::optional<at::Tensor>& channel_alpha,
                                              const std::optional<at::Tensor>& channel_pos_weight,
                                              SYMFOCAL_OPTION_PARAMS) {
  const Params params = parse_params(SYMFOCAL_OPTION_ARGS);
  typename Backend::Guard guard(logits.device());
  PreparedCall call = prepare(logits, target, lengths, mask, weight, params, normalizer, channel_alpha,
                               channel_pos_weight);
  const int64_t items = Backend::work_items(call.pb);
  ForwardOutputs out(logits, call.pb, items, Backend::scratch_rows(call.pb, items));
  Backend::forward(call.pb, out.loss_map.defined() ? out.loss_map.data_ptr() : nullptr,
                   out.partials.data_ptr<double>(), items, out.stats.data_ptr<double>(),
                   out.loss_scalar.data_ptr());
  return {out.loss(), out.stats};
}

template <class Backend>
at::Tensor backward_op(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                       const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                       const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& channel_alpha,
                       const std::optional<at::Tensor>& channel_pos_weight, const at::Tensor& stats,
                       SYMFOCAL_OPTION_PARAMS) {
  const Params params = parse_params(SYMFOCAL_OPTION_ARGS);
  typename Backend::Guard guard(logits.device());
  PreparedCall call = prepare(logits, target, lengths, mask, weight, params, std::nullopt, channel_alpha,
                               channel_pos_weight);
  TORCH_CHECK_VALUE(stats.numel() == num_stats(call.pb) && stats.scalar_type() == at::kDouble &&
                        stats.device() == logits.device(),
                    "symfocal: stats must be the float64 statistics the forward op returned");
  TORCH_CHECK_VALUE(grad.device() == logits.device(), "symfocal: grad is on ", grad.device(),
                    " but logits are on ", logits.device());
  at::Tensor grad_logits = at::empty(logits.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  if (logits.numel() == 0) return grad_logits;

  GradSource src;
  at::Tensor stats_c = stats.contiguous();
  src.stats = stats_c.data_ptr<double>();
  at::Tensor g;
  if (params.reduction == Reduction::kNone) {
    TORCH_CHECK_VALUE(grad.sizes() == logits.sizes(), "symfocal: grad must have the shape of logits ",
                      logits.sizes(), " for reduction 'none', got ", grad.sizes());
    g = grad.scalar_type() == logits.scalar_type() ? grad : grad.to(logits.scalar_type());
    src.grad_map = map_view(g, call.keep_alive);
  } else {
    TORCH_CHECK_VALUE(grad.numel() == 1, "symfocal: grad must be a scalar for reduction '",
                      params.reduction == Reduction::kMean ? "mean" : "sum", "', got shape ", grad.sizes());
    g = grad.reshape({}).to(loss_dtype_of(logits)).contiguous();
    src.grad_scalar = g.data_ptr();
  }
  Backend::backward(call.pb, src, grad_logits.data_ptr());
  return grad_logits;
}

}  // namespace symfocal
