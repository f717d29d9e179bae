// Software prefetch that the compiler keeps.
//
// GCC (12, at -O1 and above) finds that a function whose only effect is __builtin_prefetch has no
// side effects (ipa-pure-const) and deletes every call to it: the prefetch helpers of both CPU
// kernels compiled to nothing, and the softmax kernel spent half its time waiting for the mirror
// cells' bins it had asked for ahead (measured: a [1, 384, 384, 64] distogram step, 12 ms of which
// the mirror cells' loads were about 6). The empty volatile asm is a side effect that stays.
#pragma once

namespace symfocal {
namespace cpu {

// Starts loading the cache line holding p into the nearest cache.
inline void prefetch_line(const void* p) {
  __builtin_prefetch(p);
  asm volatile("" : : "r"(p));
}

// The same for a line about to be written (its read for ownership started early).
inline void prefetch_line_for_write(const void* p) {
  __builtin_prefetch(p, 1);
  asm volatile("" : : "r"(p));
}

}  // namespace cpu
}  // namespace symfocal
