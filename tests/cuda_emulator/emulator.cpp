// The CUDA ops with the kernels of csrc/cuda run on the CPU by device_shim.h:
// the same host code (op_impl.h, problem.cpp) and the same kernels as the
// CUDA build, launched by an emulator instead of a GPU. A test module, built
// by tests/cuda_emulation.py; symfocal itself never loads it.
#include <torch/extension.h>

#include "op_impl.h"
// After every torch header: the shim redefines CUDA's keywords.
#include "device_shim.h"
#include "cuda/finalize_kernel.cuh"
#include "cuda/tile_pair_kernel.cuh"

namespace symfocal {
namespace {

using cuda::detail::element_size;
using cuda::detail::finalize_kernel;
using cuda::detail::kFinalizeThreads;
using cuda::detail::kThreads;
using cuda::detail::Pass;
using cuda::detail::TilePairKernel;
using sf_emu::Block;

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

void allow_inputs(const Problem& pb, const GradSource& src) {
  Block& block = Block::instance();
  block.clear_ranges();
  block.allow(pb.logits.data, view_extent(pb.logits, pb.L, pb.logits_dtype), "logits");
  block.allow(pb.target.data, view_extent(pb.target, pb.L, pb.target_dtype), "target");
  if (pb.has_mask) block.allow(pb.mask.data, view_extent(pb.mask, pb.L, pb.mask_dtype), "mask");
  block.allow(src.grad_map.data, view_extent(src.grad_map, pb.L, pb.logits_dtype), "grad");
}

// launch_plan.h's launcher on the emulator.
struct EmulatedLauncher {
  template <Pass P, typename acc_t>
  void tile_pairs(const Problem& pb, int64_t items, const GradSource& src, void* out, double* partials) {
    const TilePairKernel kernel = cuda::detail::tile_pair_kernel_for<P, acc_t>(pb.params.mode);
    const cuda::detail::WideAccess wide = cuda::detail::wide_access(pb, src, out);
    const auto grid = static_cast<unsigned>(items < kEmulatedGrid ? items : kEmulatedGrid);
    Block::instance().launch(grid, kThreads, [&] { kernel(pb, items, src, wide, out, partials); });
  }

  template <typename loss_t>
  void finalize(const double* partials, int64_t items, double* stats, loss_t* loss, Reduction reduction,
                double lambda) {
    Block::instance().launch(1, kFinalizeThreads,
                             [&] { finalize_kernel<loss_t>(partials, items, stats, loss, reduction, lambda); });
  }
};

// What ops_cuda.cpp's backend does, with the emulator in place of a stream.
struct EmulatedBackend {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  static void forward(const Problem& pb, void* loss_map, double* partials, int64_t items, double* stats,
                      void* loss_scalar) {
    Block& block = Block::instance();
    allow_inputs(pb, GradSource{});
    block.allow(loss_map, pb.batch * pb.L * pb.L * element_size(pb.logits_dtype), "loss map");
    block.allow(partials, items * kNumStats * static_cast<int64_t>(sizeof(double)), "partials");
    block.allow(stats, kNumStats * sizeof(double), "stats");
    block.allow(loss_scalar, pb.logits_dtype == DType::kFloat64 ? sizeof(double) : sizeof(float), "loss");
    EmulatedLauncher launch;
    cuda::detail::plan_forward(launch, pb, loss_map, partials, items, stats, loss_scalar);
  }

  static void backward(const Problem& pb, const GradSource& src, void* grad) {
    allow_inputs(pb, src);
    Block::instance().allow(grad, pb.batch * pb.L * pb.L * element_size(pb.logits_dtype), "grad_logits");
    EmulatedLauncher launch;
    cuda::detail::plan_backward(launch, pb, src, grad, num_work_items(pb));
  }
};

}  // namespace
}  // namespace symfocal

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "symfocal's CUDA kernels run on the CPU by an emulator (tests only)";
  m.def("forward", &symfocal::forward_op<symfocal::EmulatedBackend>);
  m.def("backward", &symfocal::backward_op<symfocal::EmulatedBackend>);
  m.def("access_counts", [] { return sf_emu::Block::instance().access_counts(); },
        "(wide, single-cell) global accesses since the last call");
}
