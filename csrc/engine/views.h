// Tensors to the plain views the kernels read (MapView, Problem's geometry and cell rules), for
// every loss family. Shared by the CPU and CUDA registrations.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "engine/types.h"

namespace symfocal {

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

// The geometry, the cell rules (lengths, mask) and the weight map of a [..., L, L] logits view,
// without any target: sigmoid/problem.h's prepare adds the binary target, softmax/problem.h's the
// bins. The weight (floating, broadcastable) is read in place if it has the accumulation dtype
// (float32; float64 for float64 logits), else converted at its own size, never expanded.
PreparedCall prepare_cells(const at::Tensor& logits, const std::optional<at::Tensor>& lengths,
                           const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight,
                           const Params& params);

// Points call.pb.normalizer at a float64 copy of `normalizer` (one element, on the
// logits' device: read there by the finalize, no host sync), if there is one.
void attach_normalizer(PreparedCall& call, const at::Tensor& logits, const std::optional<at::Tensor>& normalizer);

// Number of tile pairs: the unit of work and of partial sums.
int64_t num_work_items(const Problem& pb);

}  // namespace symfocal
