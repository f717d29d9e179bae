// From the softmax ops' tensors and options to the plain SoftmaxProblem the
// kernels read. Shared by the CPU and CUDA registrations.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>
#include <vector>

#include "sigmoid/problem.h"
#include "softmax/types.h"

namespace symfocal {

#define SYMFOCAL_SOFTMAX_OPTION_PARAMS                                                   \
  std::string_view mode, double gamma, double label_smoothing, int64_t min_separation, \
      std::string_view reduction, std::string_view normalize, std::optional<int64_t> ignore_index
#define SYMFOCAL_SOFTMAX_OPTION_ARGS mode, gamma, label_smoothing, min_separation, reduction, normalize, ignore_index

struct PreparedSoftmaxCall {
  SoftmaxProblem pb;
  std::vector<at::Tensor> keep_alive;  // tensors made here that pb points into
};

// logits [..., L, L, C] (any strides; the Python layer moves a class_dim=-3
// layout there as a view), target [..., L, L] bin indices (uint8, int32,
// int64) or [..., L, L, C] soft, alpha float64 [C] on the logits' device.
// weight: floating, broadcastable to [..., L, L], each cell's loss times it; ignore_index: a bin index
// (index targets only) whose cells do not count. normalizer (one element) replaces the valid cells' count of normalize 'cells', reduction 'mean'.
// Checks the invariants the kernels rely on; copies nothing but lengths.
PreparedSoftmaxCall prepare_softmax(const at::Tensor& logits, const at::Tensor& target,
                                    const std::optional<at::Tensor>& alpha, const std::optional<at::Tensor>& lengths,
                                    const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight,
                                    SYMFOCAL_SOFTMAX_OPTION_PARAMS,
                                    const std::optional<at::Tensor>& normalizer = std::nullopt);

}  // namespace symfocal
