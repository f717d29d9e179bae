// From the op's tensors and options to the plain Problem the kernels read.
// Shared by the CPU and CUDA registrations.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>
#include <vector>

#include "engine/types.h"
#include "engine/views.h"

namespace symfocal {

Params parse_params(std::string_view mode, std::optional<double> alpha, double gamma,
                    double pos_weight, double label_smoothing, int64_t min_separation,
                    double symmetry_weight, std::string_view penalty, double huber_delta,
                    std::string_view reduction, std::string_view normalize,
                    std::optional<double> ignore_index = std::nullopt);

// Checks the invariants the kernels rely on (the Python layer has already
// given the user-facing errors) and describes the inputs without copying
// them; only `lengths` is converted (to int64, a handful of values).
// `weight` (floating, broadcastable to logits) multiplies each cell's loss.
// `normalizer` (a one-element tensor on the logits' device, or none) replaces
// the count a mean divides by; channel_alpha / channel_pos_weight (float64 [C]
// for logits [..., C, L, L]) give each channel its own alpha / pos_weight.
PreparedCall prepare(const at::Tensor& logits, const at::Tensor& target,
                     const std::optional<at::Tensor>& lengths, const std::optional<at::Tensor>& mask,
                     const std::optional<at::Tensor>& weight, const Params& params, const std::optional<at::Tensor>& normalizer = std::nullopt,
                     const std::optional<at::Tensor>& channel_alpha = std::nullopt,
                     const std::optional<at::Tensor>& channel_pos_weight = std::nullopt);

}  // namespace symfocal
