#include "engine/views.h"

#include <ATen/ATen.h>

#include "engine/tiles.h"

namespace symfocal {

DType dtype_of(at::ScalarType st) {
  switch (st) {
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kBool: return DType::kBool;
    case at::kByte: return DType::kUInt8;
    case at::kChar: return DType::kInt8;
    default: TORCH_CHECK_TYPE(false, "symfocal: unsupported dtype ", st);
  }
}

namespace {

MapView strided_view(const at::Tensor& t) {
  const int64_t nd = t.dim();
  MapView v;
  v.data = t.data_ptr();
  v.row_stride = t.stride(nd - 2);
  v.col_stride = t.stride(nd - 1);
  // Batch dims, outermost first; size-1 dims dropped, contiguous neighbours merged.
  std::vector<int64_t> sizes, strides;
  for (int64_t d = 0; d < nd - 2; ++d) {
    if (t.size(d) == 1) continue;
    if (!sizes.empty() && strides.back() == t.stride(d) * t.size(d)) {
      sizes.back() *= t.size(d);
      strides.back() = t.stride(d);
    } else {
      sizes.push_back(t.size(d));
      strides.push_back(t.stride(d));
    }
  }
  TORCH_CHECK(sizes.size() <= static_cast<size_t>(kMaxBatchDims),
              "symfocal: internal: too many batch dims after merging");
  v.nbatch = static_cast<int32_t>(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) {
    v.batch_size[d] = sizes[d];
    v.batch_stride[d] = strides[d];
  }
  return v;
}

}  // namespace

MapView map_view(const at::Tensor& t, std::vector<at::Tensor>& keep_alive) {
  int64_t distinct = 0;
  for (int64_t d = 0; d < t.dim() - 2; ++d) distinct += t.size(d) != 1;
  if (distinct <= kMaxBatchDims) return strided_view(t);
  keep_alive.push_back(t.contiguous());
  return strided_view(keep_alive.back());
}

PreparedCall prepare_cells(const at::Tensor& logits, const std::optional<at::Tensor>& lengths,
                           const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& weight,
                           const Params& params) {
  TORCH_CHECK_VALUE(logits.dim() >= 2 && logits.size(-1) == logits.size(-2),
                    "symfocal: logits must have shape [..., L, L], got ", logits.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(logits.scalar_type()),
                   "symfocal: logits must be float16, bfloat16, float32 or float64, got ",
                   logits.scalar_type());

  PreparedCall call;
  Problem& pb = call.pb;
  pb.params = params;
  pb.L = logits.size(-1);
  pb.batch = 1;
  for (int64_t d = 0; d < logits.dim() - 2; ++d) pb.batch *= logits.size(d);
  pb.logits_dtype = dtype_of(logits.scalar_type());
  if (logits.numel() == 0) return call;  // nothing is read
  pb.logits = map_view(logits, call.keep_alive);

  if (mask.has_value()) {
    TORCH_CHECK_TYPE(mask->scalar_type() == at::kBool || mask->scalar_type() == at::kByte,
                     "symfocal: mask must be bool or uint8, got ", mask->scalar_type());
    TORCH_CHECK_VALUE(mask->device() == logits.device(), "symfocal: mask is on ", mask->device(),
                      " but logits are on ", logits.device());
    pb.has_mask = true;
    pb.mask_dtype = dtype_of(mask->scalar_type());
    // Broadcast through stride 0: a shared [L, L] mask is never copied per sample.
    const at::Tensor expanded = mask->expand(logits.sizes());
    call.keep_alive.push_back(expanded);
    pb.mask = map_view(expanded, call.keep_alive);
  }

  if (weight.has_value()) {
    TORCH_CHECK_TYPE(at::isFloatingType(weight->scalar_type()), "symfocal: weight must be a floating tensor, got ",
                     weight->scalar_type());
    TORCH_CHECK_VALUE(weight->device() == logits.device(), "symfocal: weight is on ", weight->device(),
                      " but logits are on ", logits.device());
    const at::ScalarType acc = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    pb.has_weight = true;
    // Converted (if at all) before the broadcast: a shared [L, L] weight stays [L, L].
    const at::Tensor expanded = weight->to(acc).expand(logits.sizes());
    call.keep_alive.push_back(expanded);
    pb.weight = map_view(expanded, call.keep_alive);
  }

  if (lengths.has_value()) {
    TORCH_CHECK_TYPE(!at::isFloatingType(lengths->scalar_type()) && lengths->scalar_type() != at::kBool,
                     "symfocal: lengths must be an integer tensor, got ", lengths->scalar_type());
    TORCH_CHECK_VALUE(lengths->device() == logits.device(), "symfocal: lengths is on ",
                      lengths->device(), " but logits are on ", logits.device());
    const int64_t first = logits.dim() > 2 ? logits.size(0) : 1;
    TORCH_CHECK_VALUE(lengths->numel() == pb.batch || lengths->numel() == first,
                      "symfocal: lengths must have shape logits.shape[:-2] or logits.shape[:1], got ",
                      lengths->sizes());
    call.keep_alive.push_back(lengths->to(at::kLong).contiguous());
    pb.lengths = call.keep_alive.back().data_ptr<int64_t>();
    pb.lengths_div = lengths->numel() == pb.batch ? 1 : pb.batch / first;
  }
  return call;
}

void attach_normalizer(PreparedCall& call, const at::Tensor& logits, const std::optional<at::Tensor>& normalizer) {
  if (!normalizer.has_value()) return;
  TORCH_CHECK_VALUE(normalizer->numel() == 1, "symfocal: normalizer must have one element, got shape ",
                    normalizer->sizes());
  TORCH_CHECK_VALUE(normalizer->device() == logits.device(), "symfocal: normalizer is on ", normalizer->device(),
                    " but logits are on ", logits.device());
  call.keep_alive.push_back(normalizer->reshape({}).to(at::kDouble).contiguous());
  call.pb.normalizer = call.keep_alive.back().data_ptr<double>();
}

int64_t num_work_items(const Problem& pb) {
  if (pb.L == 0) return 0;
  return pb.batch * tile_pairs_per_sample(num_tiles(pb.L));
}

}  // namespace symfocal
