// The buffer a CPU training forward writes its gradient into (B·L² or B·L²·C values), from an
// allocator that keeps the last two such buffers freed and hands them out again.
//
// Why: a fresh buffer is mostly page faults to write. glibc returns a block over 32 MiB to the
// system on every free, so each training step faults it in anew: a 38 MiB buffer
// ([1, 384, 384, 64] float32) took 15 ms to clone against 2.4 ms to copy into one already
// touched (2 threads). The gradient is freed every step (it flows into the network's backward,
// or becomes logits.grad until zero_grad), before the next step's forward asks for one of the same
// size: that one then finds its pages warm. What is kept is at most two buffers of the sizes last
// freed, memory the training step was using anyway. A fresh buffer is 2 MiB aligned and asks for
// transparent huge pages (where they are "madvise"), so its first touch is a few dozen faults.
// SYMFOCAL_CPU_KEEP_GRAD_BUFFERS=0 turns the keeping off (read once).
#pragma once

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace symfocal {

class GradBufferAllocator final : public c10::Allocator {
 public:
  static GradBufferAllocator& instance() {
    static GradBufferAllocator* allocator = new GradBufferAllocator();  // never destroyed: tensors may outlive exit
    return *allocator;
  }

  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kSmallest) return c10::GetDefaultCPUAllocator()->allocate(bytes);
    if (keeping_) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (Block*& kept : kept_) {
        // A kept block no more than a quarter larger than a fresh one would be: a batch of other
        // lengths does not pin a much larger one.
        if (kept != nullptr && kept->capacity >= bytes && kept->capacity <= rounded(bytes) / 4 * 5) {
          Block* block = kept;
          kept = nullptr;
          return {block->data, block, &GradBufferAllocator::give_back, c10::Device(c10::DeviceType::CPU)};
        }
      }
    }
    Block* block = fresh(bytes);
    return {block->data, block, &GradBufferAllocator::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }

 private:
  struct Block {
    void* data;
    size_t capacity;
  };
  static constexpr size_t kSmallest = size_t(1) << 20;  // below this, faults cost little: the default allocator
  static constexpr size_t kHuge = size_t(2) << 20;

  GradBufferAllocator() {
    const char* env = std::getenv("SYMFOCAL_CPU_KEEP_GRAD_BUFFERS");
    keeping_ = env == nullptr || std::strcmp(env, "0") != 0;
  }

  static size_t rounded(size_t bytes) { return (bytes + kHuge - 1) / kHuge * kHuge; }

  static Block* fresh(size_t bytes) {
    const size_t capacity = rounded(bytes);
    void* data = nullptr;
#if defined(__linux__) || defined(__APPLE__)
    if (posix_memalign(&data, kHuge, capacity) != 0) data = nullptr;
    TORCH_CHECK(data != nullptr, "symfocal: out of memory: could not allocate ", capacity,
                " bytes for the gradient of the loss");
#if defined(MADV_HUGEPAGE)
    madvise(data, capacity, MADV_HUGEPAGE);  // a hint: refused, nothing changes
#endif
#else
    data = c10::alloc_cpu(capacity);
#endif
    return new Block{data, capacity};
  }

  static void release(Block* block) {
#if defined(__linux__) || defined(__APPLE__)
    std::free(block->data);
#else
    c10::free_cpu(block->data);
#endif
    delete block;
  }

  // The most recently freed blocks are kept; the oldest goes back to the system.
  static void give_back(void* context) {
    Block* block = static_cast<Block*>(context);
    GradBufferAllocator& self = instance();
    if (!self.keeping_) return release(block);
    Block* dropped = block;
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      if (self.kept_[0] == nullptr) {
        self.kept_[0] = block;
        dropped = nullptr;
      } else {
        dropped = self.kept_[1];
        self.kept_[1] = self.kept_[0];
        self.kept_[0] = block;
      }
    }
    if (dropped != nullptr) release(dropped);
  }

  bool keeping_ = true;
  std::mutex mutex_;
  Block* kept_[2] = {nullptr, nullptr};
};

// An uninitialized contiguous tensor shaped and typed as `like`, on the CPU, from the allocator above.
inline at::Tensor empty_grad_buffer(const at::Tensor& like) {
  return at::Tensor(at::detail::empty_generic(like.sizes(), &GradBufferAllocator::instance(),
                                              c10::DispatchKeySet(c10::DispatchKey::CPU), like.scalar_type(),
                                              at::MemoryFormat::Contiguous));
}

}  // namespace symfocal
