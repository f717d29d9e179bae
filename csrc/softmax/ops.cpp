// The softmax focal loss's op schemas and their CPU implementation.
#include <torch/library.h>

#include <cstdint>
#include <vector>

#include "engine/cpu/grad_buffer.h"
#include "engine/cpu/kernels.h"
#include "softmax/math.h"
#include "softmax/op_impl.h"

namespace symfocal {
namespace {

struct CpuSoftmaxBackend {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  // One row of partials a tile pair.
  static int64_t softmax_partial_rows(const SoftmaxProblem& pb) { return num_work_items(pb.cells); }

  static void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, int64_t items,
                              double* sample_stats, void* loss_scalar) {
    if (items > 0) cpu::softmax_forward(pb, loss_map, partials, nullptr);
    finalize(pb, partials, items, sample_stats, loss_scalar);
  }

  // Each sample's tile pairs are consecutive items: summed in item order,
  // whatever the thread count, so the result is bitwise reproducible.
  static void finalize(const SoftmaxProblem& pb, const double* partials, int64_t items, double* rows,
                       void* loss_scalar) {
    const int64_t batch = pb.cells.batch;
    const int64_t per_sample = batch > 0 ? items / batch : 0;
    for (int64_t b = 0; b < batch; ++b) {
      double loss = 0.0, cells = 0.0;
      for (int64_t q = b * per_sample; q < (b + 1) * per_sample; ++q) {
        loss += partials[q * kNumSoftmaxPartials + kSampleLoss];
        cells += partials[q * kNumSoftmaxPartials + kSampleCells];
      }
      rows[b * kNumSampleStats + kSampleLoss] = loss;
      rows[b * kNumSampleStats + kSampleCells] = cells;
    }
    const double value = reduce_samples(rows, batch, pb.cells.params.reduction, pb.normalize, pb.cells.normalizer);
    if (pb.cells.logits_dtype == DType::kFloat64) {
      *static_cast<double*>(loss_scalar) = value;
    } else {
      *static_cast<float*>(loss_scalar) = static_cast<float>(value);
    }
  }

  static void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad) {
    if (num_work_items(pb.cells) > 0) cpu::softmax_backward(pb, src, grad);
  }
};

std::tuple<at::Tensor, at::Tensor> softmax_forward_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                       const std::optional<at::Tensor>& alpha,
                                                       const std::optional<at::Tensor>& lengths,
                                                       const std::optional<at::Tensor>& mask,
                                                       const std::optional<at::Tensor>& weight,
                                                       const std::optional<at::Tensor>& normalizer,
                                                       SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  return softmax_forward_op<CpuSoftmaxBackend>(logits, target, alpha, lengths, mask, weight, normalizer,
                                               SYMFOCAL_SOFTMAX_OPTION_ARGS);
}

// As the binary loss's forward_train: the gradient shares the softmax of the
// loss, so the forward pass writes the gradient too. Each sample's d loss / d (its
// loss sum) depends only on how many of its cells count, so those are counted
// first (a read of the [batch, L, L] mask and targets, against the logits'
// [batch, L, L, bins]) and the gradient is written scaled: backward has nothing
// left to do for an incoming gradient of 1 (what `loss.backward()` gives), and
// otherwise scales it by the incoming gradient (stats' kSampleScale is then 1).
std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_forward_train_cpu(
    const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& alpha,
    const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& normalizer, SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  PreparedSoftmaxCall call =
      prepare_softmax(logits, target, alpha, lengths, mask, weight, SYMFOCAL_SOFTMAX_OPTION_ARGS, normalizer);
  TORCH_CHECK_VALUE(call.pb.cells.params.reduction != Reduction::kNone,
                    "symfocal: softmax_forward_train serves reductions 'mean' and 'sum'");
  const int64_t items = num_work_items(call.pb.cells);
  SoftmaxForwardOutputs out(logits, call.pb, items);
  at::Tensor grad_unit = empty_grad_buffer(logits);
  const int64_t batch = call.pb.cells.batch;
  std::vector<double> counted(batch * kNumSampleStats, 0.0), scale(batch);
  std::vector<double> cells(batch);
  cpu::softmax_sample_cells(call.pb, cells.data());
  for (int64_t b = 0; b < batch; ++b) counted[b * kNumSampleStats + kSampleCells] = cells[b];
  reduce_samples(counted.data(), batch, call.pb.cells.params.reduction, call.pb.normalize, call.pb.cells.normalizer);
  for (int64_t b = 0; b < batch; ++b) scale[b] = counted[b * kNumSampleStats + kSampleScale];
  if (items > 0)
    cpu::softmax_forward(call.pb, nullptr, out.partials.data_ptr<double>(), grad_unit.data_ptr(), scale.data());
  CpuSoftmaxBackend::finalize(call.pb, out.partials.data_ptr<double>(), items, out.stats.data_ptr<double>(),
                              out.loss_scalar.data_ptr());
  // What grad_unit still needs (symfocal/_softmax_ops.py reads it): nothing, it is scaled already.
  for (int64_t b = 0; b < batch; ++b) out.stats.data_ptr<double>()[b * kNumSampleStats + kSampleScale] = 1.0;
  if (items == 0) grad_unit.zero_();
  return {out.loss(), out.stats, grad_unit};
}

at::Tensor softmax_backward_cpu(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                                const std::optional<at::Tensor>& alpha, const std::optional<at::Tensor>& lengths,
                                const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight, const at::Tensor& stats,
                                SYMFOCAL_SOFTMAX_OPTION_PARAMS) {
  return softmax_backward_op<CpuSoftmaxBackend>(grad, logits, target, alpha, lengths, mask, weight, stats,
                                                SYMFOCAL_SOFTMAX_OPTION_ARGS);
}

}  // namespace
}  // namespace symfocal

#define SYMFOCAL_SOFTMAX_OPTION_SCHEMA \
  "str mode, float gamma, float label_smoothing, int min_separation, str reduction, str normalize, int? ignore_index"

TORCH_LIBRARY_FRAGMENT(symfocal, m) {
  // loss: a scalar (float32; float64 for float64 logits) or, for reduction 'none', the
  // [..., L, L] map; stats: float64 [batch, 3] (loss sum, valid cells, gradient scale) per sample.
  m.def("softmax_forward(Tensor logits, Tensor target, Tensor? alpha, Tensor? lengths, Tensor? mask, "
        "Tensor? weight, Tensor? normalizer, " SYMFOCAL_SOFTMAX_OPTION_SCHEMA ") -> (Tensor loss, Tensor stats)");
  // forward plus the gradient of each sample's unnormalized loss sum (CPU; mean and sum).
  m.def("softmax_forward_train(Tensor logits, Tensor target, Tensor? alpha, Tensor? lengths, Tensor? mask, "
        "Tensor? weight, Tensor? normalizer, " SYMFOCAL_SOFTMAX_OPTION_SCHEMA ") -> (Tensor loss, Tensor stats, Tensor grad_unit)");
  m.def("softmax_backward(Tensor grad, Tensor logits, Tensor target, Tensor? alpha, Tensor? lengths, "
        "Tensor? mask, Tensor? weight, Tensor stats, " SYMFOCAL_SOFTMAX_OPTION_SCHEMA ") -> Tensor");
}

TORCH_LIBRARY_IMPL(symfocal, CPU, m) {
  m.impl("softmax_forward", &symfocal::softmax_forward_cpu);
  m.impl("softmax_forward_train", &symfocal::softmax_forward_train_cpu);
  m.impl("softmax_backward", &symfocal::softmax_backward_cpu);
}
