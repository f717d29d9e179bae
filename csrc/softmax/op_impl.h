// The bodies of the softmax ops, shared by the devices (as op_impl.h is for
// the binary ops). A Backend provides
//   Guard
//   static int64_t softmax_partial_rows(const SoftmaxProblem&);   rows of partial sums a forward needs
//   static void softmax_forward(const SoftmaxProblem&, void* loss_map, double* partials,
//                               int64_t partial_rows, double* sample_stats, void* loss_scalar);
//   static void softmax_backward(const SoftmaxProblem&, const SoftmaxGradSource&, void* grad);
// and allocates nothing itself.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "sigmoid/op_impl.h"
#include "softmax/problem.h"

namespace symfocal {

// The outputs of a forward pass: the loss (a scalar, or the [..., L, L] map of
// reduction none), per-tile-pair partials and the [batch, 3] sample statistics.
struct SoftmaxForwardOutputs {
  at::Tensor partials, stats, loss_scalar, loss_map;
  SoftmaxForwardOutputs(const at::Tensor& logits, const SoftmaxProblem& pb, int64_t partial_rows) {
    const auto dev = logits.options();
    partials = at::empty({partial_rows, kNumSoftmaxPartials}, dev.dtype(at::kDouble));
    stats = at::empty({pb.cells.batch, kNumSampleStats}, dev.dtype(at::kDouble));
    loss_scalar = at::empty({}, dev.dtype(loss_dtype_of(logits)));
    if (pb.cells.params.reduction == Reduction::kNone)
      loss_map = at::empty(logits.sizes().slice(0, logits.dim() - 1), dev.memory_format(at::MemoryFormat::Contiguous));
  }
  at::Tensor loss() const { return loss_map.defined() ? loss_map : loss_scalar; }
};

template <class Backend>
std::tuple<at::Tensor, at::Tensor> softmax_forward_op(const at::Tensor& logits, const at::Tensor& target,
                                                      const std::optional<at::Tensor>& alpha,
                                                      const std::optional<at::Tensor>& lengths,
                                                      const std::optional<at::Tensor>& mask,
                                                      const std::optional<at::Tensor>& weight,
                                                      const std::optional<at::Tensor>& normalizer,
                                                      SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  typename Backend::Guard guard(logits.device());
  PreparedSoftmaxCall call =
      prepare_softmax(logits, target, alpha, lengths, mask, weight, SYMFOCAL_SOFTMAX_OPTION_ARGS, normalizer);
  const int64_t rows = Backend::softmax_partial_rows(call.pb);
  SoftmaxForwardOutputs out(logits, call.pb, rows);
  Backend::softmax_forward(call.pb, out.loss_map.defined() ? out.loss_map.data_ptr() : nullptr,
                           out.partials.data_ptr<double>(), rows, out.stats.data_ptr<double>(),
                           out.loss_scalar.data_ptr());
  return {out.loss(), out.stats};
}

template <class Backend>
at::Tensor softmax_backward_op(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                               const std::optional<at::Tensor>& alpha, const std::optional<at::Tensor>& lengths,
                               const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight, const at::Tensor& stats,
                               SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  typename Backend::Guard guard(logits.device());
  PreparedSoftmaxCall call = prepare_softmax(logits, target, alpha, lengths, mask, weight, SYMFOCAL_SOFTMAX_OPTION_ARGS);
  const SoftmaxProblem& pb = call.pb;
  TORCH_CHECK_VALUE(stats.dim() == 2 && stats.size(0) == pb.cells.batch && stats.size(1) == kNumSampleStats &&
                        stats.scalar_type() == at::kDouble && stats.device() == logits.device(),
                    "symfocal: stats must be the float64 [batch, ", kNumSampleStats,
                    "] statistics the forward op returned, got ", stats.sizes());
  TORCH_CHECK_VALUE(grad.device() == logits.device(), "symfocal: grad is on ", grad.device(),
                    " but logits are on ", logits.device());
  at::Tensor grad_logits = at::empty(logits.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  if (logits.numel() == 0) return grad_logits;

  SoftmaxGradSource src;
  at::Tensor stats_c = stats.contiguous();
  src.sample_stats = stats_c.data_ptr<double>();
  at::Tensor g;
  if (pb.cells.params.reduction == Reduction::kNone) {
    const auto cells = logits.sizes().slice(0, logits.dim() - 1);
    TORCH_CHECK_VALUE(grad.sizes() == cells, "symfocal: grad must have shape ", cells,
                      " for reduction 'none', got ", grad.sizes());
    g = grad.scalar_type() == logits.scalar_type() ? grad : grad.to(logits.scalar_type());
    src.grad_map = map_view(g, call.keep_alive);
  } else {
    TORCH_CHECK_VALUE(grad.numel() == 1, "symfocal: grad must be a scalar for a reduced loss, got shape ",
                      grad.sizes());
    g = grad.reshape({}).to(loss_dtype_of(logits)).contiguous();
    src.grad_scalar = g.data_ptr();
  }
  Backend::softmax_backward(pb, src, grad_logits.data_ptr());
  return grad_logits;
}

}  // namespace symfocal
