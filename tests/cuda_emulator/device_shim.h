// Compiles the kernels of csrc/cuda as host code and runs a thread block as
// fibers on one CPU thread, so that their indexing, tiling, shared-memory
// transposes and reductions are tested where no GPU is present.
//
// A block runs warp by warp (in reverse order, lanes too, in odd blocks):
// each warp's lanes run in turn until their next __syncthreads, meeting only
// each other at a shuffle, so warp 0 reaches the block's barrier before warp
// 1 starts and a missing __syncthreads shows whichever warp reads what
// another has yet to write. A barrier that some threads reach and others
// never do (divergent code), a full-mask shuffle that not every lane of the
// warp reaches, any global access outside the tensors a launch registered
// and a wide access that is not aligned (SYMFOCAL_CHECK_GLOBAL_ACCESS) are
// errors. Shared memory is filled with 0xFF bytes (NaN as a float) at the
// start of every block (SYMFOCAL_SHARED_DECLARED), so a read of a cell no
// thread wrote shows. What this cannot see: timing, the memory model,
// warp-synchronous code without shuffles.
// Include it before any kernel header.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs at a time, so a function-local static is that block's shared memory.
#define __shared__ static

namespace sf_emu {

struct Index {
  unsigned x = 0, y = 0, z = 0;
};
inline Index thread_index, block_index, block_dim, grid_dim;

struct Range {
  const char* begin;
  const char* end;
  std::string name;
};

class Block {
 public:
  static Block& instance() {
    static Block b;
    return b;
  }

  // The memory a launch may touch; anything else is reported.
  void allow(const void* p, int64_t bytes, std::string name) {
    if (p != nullptr && bytes > 0)
      ranges_.push_back({static_cast<const char*>(p), static_cast<const char*>(p) + bytes, std::move(name)});
  }
  void clear_ranges() { ranges_.clear(); }

  // Runs `body` as every thread of blocks 0 .. grid - 1, one block after another.
  void launch(unsigned grid, unsigned threads, const std::function<void()>& body) {
    grid_dim = {grid, 1, 1};
    block_dim = {threads, 1, 1};
    if (fibers_.size() < threads) fibers_.resize(threads);
    for (unsigned b = 0; b < grid; ++b) {
      block_index = {b, 0, 0};
      run_block(threads, body);
    }
    if (!error_.empty()) {
      std::string e;
      e.swap(error_);
      throw std::runtime_error(e);
    }
  }

  void sync_threads() {
    fibers_[current_].state = State::kAtBarrier;
    swapcontext(&fibers_[current_].context, &main_);
  }

  template <typename V>
  V shuffle_down(unsigned mask, V v, int delta) {
    if (mask != 0xffffffffu) report("__shfl_down_sync with a partial mask");
    const unsigned tid = current_;
    exchange_.resize(block_dim.x);
    exchange_[tid] = static_cast<double>(v);  // exact for float and double
    sync_warp();                              // every lane has written
    const unsigned lane = tid % 32;
    const V out = lane + delta < 32 ? static_cast<V>(exchange_[tid + delta]) : v;
    sync_warp();                              // every lane has read
    return out;
  }

  // __shfl_xor_sync / __shfl_sync: lane l reads the value of lane l ^ lane_mask / of src_lane.
  template <typename V>
  V shuffle_from(unsigned mask, V v, int lane_mask, bool xor_lanes, const char* what) {
    if (mask != 0xffffffffu) report(std::string(what) + " with a partial mask");
    const unsigned tid = current_;
    exchange_.resize(block_dim.x);
    exchange_[tid] = static_cast<double>(v);  // exact for float and double
    sync_warp();
    const unsigned lane = tid % 32, warp_first = tid - lane;
    const unsigned src = xor_lanes ? (lane ^ static_cast<unsigned>(lane_mask)) : static_cast<unsigned>(lane_mask) % 32;
    const V out = static_cast<V>(exchange_[warp_first + src]);
    sync_warp();
    return out;
  }

  // The first time a block's thread meets a __shared__ variable, its bytes become 0xFF.
  void poison_once(void* p, size_t bytes) {
    uint64_t& seen = poisoned_in_[p];
    if (seen == block_serial_) return;
    std::memset(p, 0xFF, bytes);
    seen = block_serial_;
  }

  // (wide, single-element) global accesses since the last call; align > 1 marks a wide one.
  std::pair<int64_t, int64_t> access_counts() {
    const std::pair<int64_t, int64_t> counts{wide_accesses_, single_accesses_};
    wide_accesses_ = single_accesses_ = 0;
    return counts;
  }

  void check_access(const void* p, int64_t bytes, int64_t align) {
    ++(align > 1 ? wide_accesses_ : single_accesses_);
    const char* at = static_cast<const char*>(p);
    if (reinterpret_cast<uintptr_t>(at) % static_cast<uintptr_t>(align) != 0) {
      std::ostringstream s;
      s << "a " << bytes << "-byte access at " << p << " is not aligned to " << align << " bytes";
      report(s.str());
    }
    for (const Range& r : ranges_)
      if (at >= r.begin && at + bytes <= r.end) return;
    std::ostringstream s;
    s << "a " << bytes << "-byte access at " << p << " lies outside every tensor of the launch (";
    for (const Range& r : ranges_) s << r.name << " [" << static_cast<const void*>(r.begin) << ", +" << (r.end - r.begin) << ") ";
    s << ")";
    report(s.str());
  }

 private:
  enum class State { kReady, kAtBarrier, kAtShuffle, kDone };
  struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    State state = State::kReady;
  };
  static constexpr size_t kStackBytes = 256 * 1024;

  static void fiber_main() {
    Block& b = instance();
    (*b.body_)();
    b.fibers_[b.current_].state = State::kDone;  // returns to main_ through uc_link
  }

  void sync_warp() {
    fibers_[current_].state = State::kAtShuffle;
    swapcontext(&fibers_[current_].context, &main_);
  }

  void report(const std::string& what) {
    if (error_.empty()) {
      std::ostringstream s;
      s << what << " (block " << block_index.x << ", thread " << current_ << ")";
      error_ = s.str();
    }
  }

  void run_block(unsigned threads, const std::function<void()>& body) {
    body_ = &body;
    for (unsigned t = 0; t < threads; ++t) {
      Fiber& f = fibers_[t];
      if (!f.stack) f.stack.reset(new char[kStackBytes]);
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = f.stack.get();
      f.context.uc_stack.ss_size = kStackBytes;
      f.context.uc_link = &main_;
      makecontext(&f.context, &Block::fiber_main, 0);
      f.state = State::kReady;
    }
    ++block_serial_;
    const bool reverse = block_index.x % 2 == 1;
    const unsigned warps = (threads + 31) / 32;
    for (;;) {
      for (unsigned k = 0; k < warps; ++k)
        if (!run_warp(reverse ? warps - 1 - k : k, threads, reverse)) return;
      unsigned waiting = 0, done = 0;
      for (unsigned t = 0; t < threads; ++t) {
        waiting += fibers_[t].state == State::kAtBarrier;
        done += fibers_[t].state == State::kDone;
      }
      if (done == threads) return;
      if (waiting != threads) {
        // The waiting fibers are abandoned; their stacks hold nothing that needs destroying.
        std::ostringstream s;
        s << "__syncthreads reached by " << waiting << " of " << threads << " threads while " << done
          << " had finished: a barrier in divergent code";
        current_ = 0;
        report(s.str());
        return;
      }
      for (unsigned t = 0; t < threads; ++t) fibers_[t].state = State::kReady;
    }
  }

  // Runs the lanes of warp w until each waits at __syncthreads or is done; a
  // shuffle releases the warp's lanes once all of them have reached it.
  // False (and an error reported) where a shuffle is reached by some lanes only.
  bool run_warp(unsigned w, unsigned threads, bool reverse) {
    const unsigned first = w * 32, lanes = (first + 32 < threads ? first + 32 : threads) - first;
    for (;;) {
      for (unsigned k = 0; k < lanes; ++k) {
        const unsigned t = first + (reverse ? lanes - 1 - k : k);
        if (fibers_[t].state != State::kReady) continue;
        current_ = t;
        thread_index = {t, 0, 0};
        swapcontext(&main_, &fibers_[t].context);
      }
      unsigned at_shuffle = 0;
      for (unsigned t = first; t < first + lanes; ++t) at_shuffle += fibers_[t].state == State::kAtShuffle;
      if (at_shuffle == 0) return true;
      if (at_shuffle != lanes) {
        std::ostringstream s;
        s << "a full-mask shuffle reached by " << at_shuffle << " of the " << lanes << " lanes of warp " << w;
        current_ = first;
        report(s.str());
        return false;
      }
      for (unsigned t = first; t < first + lanes; ++t) fibers_[t].state = State::kReady;
    }
  }

  ucontext_t main_{};
  std::vector<Fiber> fibers_;
  unsigned current_ = 0;
  const std::function<void()>* body_ = nullptr;
  std::vector<double> exchange_;
  std::unordered_map<void*, uint64_t> poisoned_in_;  // __shared__ variable -> block it was poisoned for
  uint64_t block_serial_ = 0;
  std::vector<Range> ranges_;
  std::string error_;
  int64_t wide_accesses_ = 0, single_accesses_ = 0;
};

}  // namespace sf_emu

#define threadIdx (::sf_emu::thread_index)
#define blockIdx (::sf_emu::block_index)
#define blockDim (::sf_emu::block_dim)
#define gridDim (::sf_emu::grid_dim)
#define __syncthreads() ::sf_emu::Block::instance().sync_threads()
#define __shfl_down_sync(mask, v, delta) ::sf_emu::Block::instance().shuffle_down((mask), (v), (delta))
#define __shfl_xor_sync(mask, v, lane_mask) \
  ::sf_emu::Block::instance().shuffle_from((mask), (v), (lane_mask), true, "__shfl_xor_sync")
#define __shfl_sync(mask, v, src_lane) \
  ::sf_emu::Block::instance().shuffle_from((mask), (v), (src_lane), false, "__shfl_sync")
#define SYMFOCAL_SHARED_DECLARED(var) ::sf_emu::Block::instance().poison_once(&(var), sizeof(var))
#define SYMFOCAL_CHECK_GLOBAL_ACCESS(ptr, bytes, align) \
  ::sf_emu::Block::instance().check_access((ptr), static_cast<int64_t>(bytes), static_cast<int64_t>(align))
