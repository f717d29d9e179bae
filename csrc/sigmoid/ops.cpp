// The op schemas and their CPU implementation.
#include <torch/library.h>

#include "engine/cpu/grad_buffer.h"
#include "engine/cpu/kernels.h"
#include "sigmoid/math.h"
#include "sigmoid/op_impl.h"

namespace symfocal {
namespace {

struct CpuBackend {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  static int64_t work_items(const Problem& pb) { return cpu::work_items(pb); }

  // Normalize sample: one row of sums a sample.
  static int64_t scratch_rows(const Problem& pb, int64_t) {
    return pb.params.normalize == Normalize::kSample ? pb.batch : 0;
  }

  static void forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                      void* loss_scalar) {
    if (items > 0) cpu::forward(pb, loss_map, partials, nullptr);
    finalize(pb, partials, items, stats, loss_scalar);
  }

  // Summed in item order, whatever the thread count: bitwise reproducible. With
  // normalize sample, each sample's items (consecutive) into its row after them.
  static void finalize(const Problem& pb, double* partials, int64_t items, double* stats, void* loss_scalar) {
    double value;
    if (pb.params.normalize == Normalize::kSample) {
      double* rows = partials + items * kNumPartials;
      const int64_t per_sample = pb.batch > 0 ? items / pb.batch : 0;
      for (int64_t b = 0; b < pb.batch; ++b) {
        double* row = rows + b * kNumPartials;
        for (int s = 0; s < kNumPartials; ++s) row[s] = 0.0;
        for (int64_t i = b * per_sample; i < (b + 1) * per_sample; ++i)
          for (int s = 0; s < kNumPartials; ++s) row[s] += partials[i * kNumPartials + s];
      }
      value = reduce_sample_rows(rows, pb.batch, stats, pb.params);
    } else {
      for (int s = 0; s < kNumStats; ++s) stats[s] = 0.0;
      for (int64_t i = 0; i < items; ++i)
        for (int s = 0; s < kNumPartials; ++s) stats[s] += partials[i * kNumPartials + s];
      value = reduce_stats(stats, pb.params, pb.normalizer);
    }
    if (pb.logits_dtype == DType::kFloat64) {
      *static_cast<double*>(loss_scalar) = value;
    } else {
      *static_cast<float*>(loss_scalar) = static_cast<float>(value);
    }
  }

  static void backward(const Problem& pb, const GradSource& src, void* grad) {
    if (cpu::work_items(pb) > 0) cpu::backward(pb, src, grad);
  }
};

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& logits, const at::Tensor& target,
                                               const std::optional<at::Tensor>& lengths,
                                               const std::optional<at::Tensor>& mask,
                                               const std::optional<at::Tensor>& weight,
                                               const std::optional<at::Tensor>& normalizer,
                                               const std::optional<at::Tensor>& channel_alpha,
                                               const std::optional<at::Tensor>& channel_pos_weight,
                                               SYMFOCAL_OPTION_PARAMS) {
  return forward_op<CpuBackend>(logits, target, lengths, mask, weight, normalizer, channel_alpha, channel_pos_weight,
                                SYMFOCAL_OPTION_ARGS);
}

// d loss / d (focal sum) where the data do not decide it: a sum, a given normalizer, or a mean over
// the cells that lengths, separation and the triangle admit (no mask, no ignore_index). The training
// forward then writes the gradient already scaled, and backward has nothing left to do for an
// incoming gradient of 1 (the loss itself, as `loss.backward()` gives it). As focal_scale_of.
std::optional<double> focal_scale_up_front(const Problem& pb) {
  const Params& p = pb.params;
  if (p.normalize == Normalize::kSample) return std::nullopt;  // one scale a sample
  if (p.reduction != Reduction::kMean) return 1.0;
  double divisor = 0.0;
  if (pb.normalizer != nullptr) {
    divisor = *pb.normalizer;
  } else if (p.normalize == Normalize::kCells && !pb.has_mask && !p.has_ignore_index) {
    for (int64_t b = 0; b < pb.batch; ++b) divisor += admitted_cells(sample_length(pb, b), p.min_separation, p.mode);
  } else {
    return std::nullopt;
  }
  return divisor > 0.0 ? 1.0 / divisor : 0.0;
}

// The CPU's training forward: the math of the gradient shares the exp and log
// of the loss, so the forward pass also writes the gradient of the unnormalized
// focal sum; backward then only scales it (symfocal/_ops.py). On the CPU this
// halves the work of forward+backward; the saved buffer replaces the inputs. Its stats'
// scales are what grad_unit still needs (1 where focal_scale_up_front applied it).
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_train_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                                 const std::optional<at::Tensor>& lengths,
                                                                 const std::optional<at::Tensor>& mask,
                                                                 const std::optional<at::Tensor>& weight,
                                                                 const std::optional<at::Tensor>& normalizer,
                                                                 const std::optional<at::Tensor>& channel_alpha,
                                                                 const std::optional<at::Tensor>& channel_pos_weight,
                                                                 SYMFOCAL_OPTION_PARAMS) {
  const Params params = parse_params(SYMFOCAL_OPTION_ARGS);
  TORCH_CHECK_VALUE(params.reduction != Reduction::kNone && params.symmetry_weight == 0.0,
                    "symfocal: forward_train serves reductions 'mean' and 'sum' without a symmetry penalty");
  PreparedCall call =
      prepare(logits, target, lengths, mask, weight, params, normalizer, channel_alpha, channel_pos_weight);
  const int64_t items = CpuBackend::work_items(call.pb);
  ForwardOutputs out(logits, call.pb, items, CpuBackend::scratch_rows(call.pb, items));
  at::Tensor grad_unit = empty_grad_buffer(logits);
  const std::optional<double> scale = focal_scale_up_front(call.pb);
  if (items > 0) cpu::forward(call.pb, nullptr, out.partials.data_ptr<double>(), grad_unit.data_ptr(), scale.value_or(1.0));
  CpuBackend::finalize(call.pb, out.partials.data_ptr<double>(), items, out.stats.data_ptr<double>(),
                       out.loss_scalar.data_ptr());
  // What grad_unit still needs (symfocal/_sigmoid_ops.py reads it): nothing when it is scaled already.
  if (scale.has_value()) out.stats.data_ptr<double>()[kFocalScale] = 1.0;
  if (items == 0) grad_unit.zero_();
  return {out.loss(), out.stats, grad_unit};
}

at::Tensor backward_cpu(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                        const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                        const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& channel_alpha,
                        const std::optional<at::Tensor>& channel_pos_weight, const at::Tensor& stats,
                        SYMFOCAL_OPTION_PARAMS) {
  return backward_op<CpuBackend>(grad, logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats,
                                 SYMFOCAL_OPTION_ARGS);
}

}  // namespace
}  // namespace symfocal

#define SYMFOCAL_OPTION_SCHEMA                                                                \
  "str mode, float? alpha, float gamma, float pos_weight, float label_smoothing, "          \
  "int min_separation, float symmetry_weight, str penalty, float huber_delta, str reduction, str normalize, " \
  "float? ignore_index"

TORCH_LIBRARY(symfocal, m) {
  // loss: a scalar (float32, float64 for float64 logits) or, for reduction
  // 'none', the per-cell map; stats: float64 [focal sum, cells, penalty sum,
  // pairs, positive mass, focal scale] (engine/types.h's Stat), then with
  // normalize 'sample' each sample's focal scale.
  // weight: a float map broadcastable to logits, each cell's loss times it; ignore_index: a target value
  // that drops its cell. channel_alpha, channel_pos_weight: float64 [C] for logits [..., C, L, L], or None.
  m.def("forward(Tensor logits, Tensor target, Tensor? lengths, Tensor? mask, Tensor? weight, Tensor? normalizer, "
        "Tensor? channel_alpha, Tensor? channel_pos_weight, " SYMFOCAL_OPTION_SCHEMA ") -> (Tensor loss, Tensor stats)");
  // forward plus the gradient of the unnormalized focal sum (CPU; mean/sum, no penalty).
  m.def("forward_train(Tensor logits, Tensor target, Tensor? lengths, Tensor? mask, Tensor? weight, Tensor? normalizer, "
        "Tensor? channel_alpha, Tensor? channel_pos_weight, " SYMFOCAL_OPTION_SCHEMA
        ") -> (Tensor loss, Tensor stats, Tensor grad_unit)");
  m.def("backward(Tensor grad, Tensor logits, Tensor target, Tensor? lengths, Tensor? mask, Tensor? weight, "
        "Tensor? channel_alpha, Tensor? channel_pos_weight, Tensor stats, " SYMFOCAL_OPTION_SCHEMA ") -> Tensor");
}

TORCH_LIBRARY_IMPL(symfocal, CPU, m) {
  m.impl("forward", &symfocal::forward_cpu);
  m.impl("forward_train", &symfocal::forward_train_cpu);
  m.impl("backward", &symfocal::backward_cpu);
}
