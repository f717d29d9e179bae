// From the op's tensors and options to the plain Problem the kernels read.
// Shared by the CPU and CUDA registrations.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>
#include <vector>

#include "engine/types.h"

namespace symfocal {

Params parse_params(std::string_view mode, std::optional<double> alpha, double gamma,
                    double pos_weight, double label_smoothing, int64_t min_separation,
                    double symmetry_weight, std::string_view penalty, double huber_delta,
                    std::string_view reduction);

DType dtype_of(at::ScalarType st);

// A [batch..., L, L] view of `t` (which has the logits' shape, possibly
// through stride-0 broadcast dims). Adjacent batch dims that are contiguous
// with each other are merged; `t` must outlive the view. Only with more than
// kMaxBatchDims unmergeable batch dims is `t` copied (into keep_alive).
MapView map_view(const at::Tensor& t, std::vector<at::Tensor>& keep_alive);

struct PreparedCall {
  Problem pb;
  std::vector<at::Tensor> keep_alive;  // tensors made here that pb points into
};

// Checks the invariants the kernels rely on (the Python layer has already
// given the user-facing errors) and describes the inputs without copying
// them; only `lengths` is converted (to int64, a handful of values).
PreparedCall prepare(const at::Tensor& logits, const at::Tensor& target,
                     const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                     const Params& params);

// prepare() without the target: the geometry and the cell rules (lengths,
// mask) of a [..., L, L] logits view. The softmax loss's targets are its own.
PreparedCall prepare_cells(const at::Tensor& logits, const std::optional<at::Tensor>& lengths,
                           const std::optional<at::Tensor>& mask, const Params& params);

// Number of tile pairs: the unit of work and of partial sums.
int64_t num_work_items(const Problem& pb);

}  // namespace symfocal
