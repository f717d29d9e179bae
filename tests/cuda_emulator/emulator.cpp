// The CUDA ops with the kernels of csrc/cuda run on the CPU by device_shim.h:
// the same host code (op_impl.h, problem.cpp) and the same kernels as the
// CUDA build, launched by an emulator instead of a GPU. A test module, built
// by tests/cuda_emulation.py; symfocal itself never loads it.
// The device's float math with its error model, before anything includes sigmoid/math.h.
#include "device_math.h"

#include <torch/extension.h>

#include <stdexcept>

#include "sigmoid/op_impl.h"
#include "softmax/op_impl.h"
// After every torch header: the shim redefines CUDA's keywords.
#include "device_shim.h"
#include "sigmoid/cuda/finalize_kernel.cuh"
#include "softmax/cuda/kernel.cuh"
#include "sigmoid/cuda/kernel.cuh"

namespace symfocal {
namespace {

using cuda::Variant;
using cuda::detail::element_size;
using cuda::detail::finalize_chunks_kernel;
using cuda::detail::finalize_kernel;
using cuda::detail::sample_sums_kernel;
using cuda::detail::kFinalizeThreads;
using cuda::detail::Pass;
using cuda::detail::TilePairKernel;
using sf_emu::Block;

// The variant the emulated launches use (variants.h; this module is built with all of them).
Variant g_variant = Variant::kDefault;

// A few blocks, each looping over its share of the tile pairs: the grid-stride
// loop is exercised, and launches stay fast.
constexpr int64_t kEmulatedGrid = 3;

// Bytes from a view's first element to one past its last.
int64_t view_extent(const MapView& v, int64_t L, DType dt) {
  if (v.data == nullptr || L == 0) return 0;
  int64_t last = (L - 1) * (v.row_stride + v.col_stride);
  for (int d = 0; d < v.nbatch; ++d) {
    if (v.batch_size[d] == 0) return 0;
    last += (v.batch_size[d] - 1) * v.batch_stride[d];
  }
  return (last + 1) * element_size(dt);
}

// The weight map has the accumulation dtype (engine/views.cpp).
DType weight_dtype_of(const Problem& pb) {
  return pb.logits_dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
}

void allow_inputs(const Problem& pb, const GradSource& src) {
  Block& block = Block::instance();
  block.clear_ranges();
  block.allow(pb.logits.data, view_extent(pb.logits, pb.L, pb.logits_dtype), "logits");
  block.allow(pb.target.data, view_extent(pb.target, pb.L, pb.target_dtype), "target");
  if (pb.has_mask) block.allow(pb.mask.data, view_extent(pb.mask, pb.L, pb.mask_dtype), "mask");
  if (pb.has_weight) block.allow(pb.weight.data, view_extent(pb.weight, pb.L, weight_dtype_of(pb)), "weight");
  block.allow(src.grad_map.data, view_extent(src.grad_map, pb.L, pb.logits_dtype), "grad");
  if (pb.normalizer != nullptr) block.allow(pb.normalizer, sizeof(double), "normalizer");
  const auto per_channel = pb.channels * static_cast<int64_t>(sizeof(double));
  if (pb.channel_alpha != nullptr) block.allow(pb.channel_alpha, per_channel, "channel alpha");
  if (pb.channel_pos_weight != nullptr) block.allow(pb.channel_pos_weight, per_channel, "channel pos_weight");
}

// launch_plan.h's launcher on the emulator.
struct EmulatedLauncher {
  template <Pass P, typename acc_t, class Shape>
  void tile_pairs(const Problem& pb, int64_t items, const GradSource& src, void* out, double* partials,
                  bool cell_access) {
    const TilePairKernel kernel = cuda::detail::tile_pair_kernel_for<P, Shape, acc_t>(pb.params.mode);
    const cuda::detail::WideAccess wide = cuda::detail::wide_access(pb, src, out, cell_access);
    const auto grid = static_cast<unsigned>(items < kEmulatedGrid ? items : kEmulatedGrid);
    Block::instance().launch(grid, Shape::kThreads, [&] { kernel(pb, items, src, wide, out, partials); });
  }

  void finalize_chunks(const double* partials, int64_t items, double* chunk_sums) {
    const auto blocks = static_cast<unsigned>(cuda::detail::finalize_chunks(items));
    Block::instance().launch(blocks, kFinalizeThreads, [&] { finalize_chunks_kernel(partials, items, chunk_sums); });
  }

  void sample_sums(const double* partials, int64_t per_sample, int64_t batch, double* rows) {
    const auto blocks = static_cast<unsigned>(batch < kEmulatedGrid ? batch : kEmulatedGrid);
    Block::instance().launch(blocks, kFinalizeThreads, [&] { sample_sums_kernel(partials, per_sample, batch, rows); });
  }

  template <typename loss_t>
  void finalize(const double* rows, int64_t n, double* stats, loss_t* loss, const Params& params,
                const double* normalizer) {
    Block::instance().launch(1, kFinalizeThreads,
                             [&] { finalize_kernel<loss_t>(rows, n, stats, loss, params, normalizer); });
  }
};

// What ops_cuda.cpp's backend does, with the emulator in place of a stream.
struct EmulatedBackend {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  static int64_t work_items(const Problem& pb) { return num_work_items(pb); }

  static int64_t scratch_rows(const Problem& pb, int64_t items) { return cuda::finalize_scratch_rows(pb, items); }

  static void forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                      void* loss_scalar) {
    Block& block = Block::instance();
    allow_inputs(pb, GradSource{});
    block.allow(loss_map, pb.batch * pb.L * pb.L * element_size(pb.logits_dtype), "loss map");
    block.allow(partials, (items + scratch_rows(pb, items)) * kNumPartials * static_cast<int64_t>(sizeof(double)),
                "partials");
    block.allow(stats, num_stats(pb) * static_cast<int64_t>(sizeof(double)), "stats");
    block.allow(loss_scalar, pb.logits_dtype == DType::kFloat64 ? sizeof(double) : sizeof(float), "loss");
    EmulatedLauncher launch;
    cuda::detail::plan_forward(launch, pb, g_variant, loss_map, partials, items, stats, loss_scalar);
  }

  static void backward(const Problem& pb, const GradSource& src, void* grad) {
    allow_inputs(pb, src);
    Block::instance().allow(grad, pb.batch * pb.L * pb.L * element_size(pb.logits_dtype), "grad_logits");
    EmulatedLauncher launch;
    cuda::detail::plan_backward(launch, pb, g_variant, src, grad, num_work_items(pb));
  }
};

// softmax/cuda/kernel.cuh's launcher on the emulator.
struct EmulatedSoftmaxLauncher {
  void pairs(cuda::detail::SoftmaxPairsKernel kernel, const SoftmaxProblem& pb, int64_t units,
             const SoftmaxGradSource& src, void* out, double* partials) {
    const auto grid = static_cast<unsigned>(units < kEmulatedGrid ? units : kEmulatedGrid);
    Block::instance().launch(grid, cuda::detail::kSoftmaxThreads, [&] { kernel(pb, units, src, out, partials); });
  }

  void sample_sums(const double* partials, int64_t per_sample, int64_t batch, double* rows) {
    const auto grid = static_cast<unsigned>(batch < kEmulatedGrid ? batch : kEmulatedGrid);
    Block::instance().launch(grid, cuda::detail::kSoftmaxThreads,
                             [&] { cuda::detail::softmax_sample_sums_kernel(partials, per_sample, batch, rows); });
  }

  template <typename loss_t>
  void reduce(double* rows, int64_t batch, loss_t* loss, Reduction reduction, Normalize normalize,
              const double* normalizer) {
    Block::instance().launch(1, 32, [&] {
      cuda::detail::softmax_reduce_kernel<loss_t>(rows, batch, loss, reduction, normalize, normalizer);
    });
  }
};

// Bytes from a [..., L, L] view's first element to one past its last, with
// `bins` elements bin_stride apart in each cell.
int64_t bins_extent(const MapView& v, int64_t L, int64_t bins, int64_t bin_stride, int64_t element) {
  if (v.data == nullptr || L == 0) return 0;
  int64_t last = (L - 1) * (v.row_stride + v.col_stride) + (bins - 1) * bin_stride;
  for (int d = 0; d < v.nbatch; ++d) {
    if (v.batch_size[d] == 0) return 0;
    last += (v.batch_size[d] - 1) * v.batch_stride[d];
  }
  return (last + 1) * element;
}

void allow_softmax_inputs(const SoftmaxProblem& pb, const SoftmaxGradSource& src) {
  Block& block = Block::instance();
  const Problem& c = pb.cells;
  block.clear_ranges();
  block.allow(c.logits.data, bins_extent(c.logits, c.L, pb.bins, pb.logits_bin_stride, element_size(c.logits_dtype)),
              "logits");
  if (pb.target_kind == BinTarget::kSoft) {
    block.allow(c.target.data, bins_extent(c.target, c.L, pb.bins, pb.target_bin_stride, element_size(c.target_dtype)),
                "target");
  } else {
    block.allow(c.target.data, bins_extent(c.target, c.L, 1, 1, cuda::detail::bin_index_size(pb.target_kind)), "target");
  }
  if (c.has_mask) block.allow(c.mask.data, view_extent(c.mask, c.L, c.mask_dtype), "mask");
  if (c.has_weight) block.allow(c.weight.data, view_extent(c.weight, c.L, weight_dtype_of(c)), "weight");
  if (pb.alpha != nullptr) block.allow(pb.alpha, pb.bins * static_cast<int64_t>(sizeof(double)), "alpha");
  if (c.normalizer != nullptr) block.allow(c.normalizer, sizeof(double), "normalizer");
  block.allow(src.grad_map.data, view_extent(src.grad_map, c.L, c.logits_dtype), "grad");
  block.allow(src.grad_scalar, c.logits_dtype == DType::kFloat64 ? 8 : 4, "grad scalar");
  block.allow(src.sample_stats, c.batch * kNumSampleStats * static_cast<int64_t>(sizeof(double)), "stats");
}

// What ops_cuda.cpp's softmax backend does, with the emulator in place of a stream.
struct EmulatedSoftmaxBackend {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  static int64_t softmax_partial_rows(const SoftmaxProblem& pb) { return cuda::detail::softmax_units(pb); }

  static void softmax_forward(const SoftmaxProblem& pb, void* loss_map, double* partials, int64_t rows_of_partials,
                              double* rows, void* loss_scalar) {
    Block& block = Block::instance();
    const Problem& c = pb.cells;
    allow_softmax_inputs(pb, SoftmaxGradSource{});
    block.allow(loss_map, c.batch * c.L * c.L * element_size(c.logits_dtype), "loss map");
    block.allow(partials, rows_of_partials * kNumSoftmaxPartials * static_cast<int64_t>(sizeof(double)), "partials");
    block.allow(rows, c.batch * kNumSampleStats * static_cast<int64_t>(sizeof(double)), "stats");
    block.allow(loss_scalar, c.logits_dtype == DType::kFloat64 ? sizeof(double) : sizeof(float), "loss");
    EmulatedSoftmaxLauncher launch;
    cuda::detail::plan_softmax_forward(launch, pb, loss_map, partials, rows, loss_scalar);
  }

  static void softmax_backward(const SoftmaxProblem& pb, const SoftmaxGradSource& src, void* grad) {
    const Problem& c = pb.cells;
    allow_softmax_inputs(pb, src);
    Block::instance().allow(grad, c.batch * c.L * c.L * pb.bins * element_size(c.logits_dtype), "grad_logits");
    EmulatedSoftmaxLauncher launch;
    cuda::detail::plan_softmax_backward(launch, pb, src, grad);
  }
};

}  // namespace

// Small kernels with planted faults that the emulator must show (tests/test_cuda.py):
// each returns what the faulty read saw, or throws the emulator's report.
namespace selftest {

// Reads shared cells that no thread wrote: 0xFF bytes, NaN.
float unwritten_shared_read() {
  float seen = 0.0f;
  Block::instance().clear_ranges();
  Block::instance().launch(1, 64, [&] {
    __shared__ float sh[64];
    SYMFOCAL_SHARED_DECLARED(sh);
    if (threadIdx.x < 32) sh[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) seen = sh[40];
  });
  return seen;
}

// A race across warps that a shuffle does not order: on a GPU a shuffle syncs
// one warp only, so thread 0 may read sh[0] before thread 32 has written it.
float read_ordered_only_by_a_shuffle() {
  float seen = 0.0f;
  Block::instance().clear_ranges();
  Block::instance().launch(1, 64, [&] {
    __shared__ float sh[1];
    SYMFOCAL_SHARED_DECLARED(sh);
    if (threadIdx.x == 32) sh[0] = 1.0f;
    const float v = __shfl_down_sync(0xffffffffu, 0.0f, 1);
    if (threadIdx.x == 0) seen = sh[0] + v;
  });
  return seen;
}

// A full-mask shuffle in code that half a warp skips.
void divergent_shuffle() {
  Block::instance().clear_ranges();
  Block::instance().launch(1, 32, [&] {
    if (threadIdx.x < 16) (void)__shfl_down_sync(0xffffffffu, 1.0f, 1);
  });
}

}  // namespace selftest

// variants.h's declarations, for this module.
namespace cuda {
bool set_variant(Variant v) {
  if (!variant_compiled(v)) return false;
  g_variant = v;
  return true;
}
Variant current_variant() { return g_variant; }
}  // namespace cuda
}  // namespace symfocal

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "symfocal's CUDA kernels run on the CPU by an emulator (tests only)";
  m.def("forward", &symfocal::forward_op<symfocal::EmulatedBackend>);
  m.def("backward", &symfocal::backward_op<symfocal::EmulatedBackend>);
  m.def("softmax_forward", &symfocal::softmax_forward_op<symfocal::EmulatedSoftmaxBackend>);
  m.def("softmax_backward", &symfocal::softmax_backward_op<symfocal::EmulatedSoftmaxBackend>);
  m.def("variants", [] {
    std::vector<std::string> names;
    for (int i = 0; i < static_cast<int>(symfocal::cuda::Variant::kCount); ++i)
      names.emplace_back(symfocal::cuda::variant_info(static_cast<symfocal::cuda::Variant>(i)).name);
    return names;
  }, "the kernel variants (csrc/sigmoid/cuda/variants.h)");
  m.def("set_variant", [](const std::string& name) {
    if (!symfocal::cuda::set_variant(symfocal::cuda::variant_named(name.c_str())))
      throw std::invalid_argument("no kernel variant named '" + name + "'");
  }, "the variant later launches use");
  m.def("set_intrinsic_error", [](bool on) { sf_emu::intrinsic_error = on; },
        "whether the emulated __expf / __logf / logf carry their documented error (default on)");
  m.def("selftest_unwritten_shared_read", &symfocal::selftest::unwritten_shared_read);
  m.def("selftest_read_ordered_only_by_a_shuffle", &symfocal::selftest::read_ordered_only_by_a_shuffle);
  m.def("selftest_divergent_shuffle", &symfocal::selftest::divergent_shuffle);
  m.def("access_counts", [] { return sf_emu::Block::instance().access_counts(); },
        "(wide, single-cell) global accesses since the last call");
}
