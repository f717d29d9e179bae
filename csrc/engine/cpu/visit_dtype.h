// The C++ type of a tensor's dtype, for the CPU kernels of both loss families.
// Inside the instruction set's namespace, as everything the ISA copies compile.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "engine/types.h"

namespace symfocal {
namespace cpu {
namespace CPU_CAPABILITY {

// f(value of the type): bool is one byte holding 0 or 1, read as uint8_t.
template <typename F>
void visit_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::kFloat16: f(c10::Half()); break;
    case DType::kBFloat16: f(c10::BFloat16()); break;
    case DType::kFloat32: f(float()); break;
    case DType::kFloat64: f(double()); break;
    case DType::kBool: f(uint8_t()); break;  // bool is one byte holding 0 or 1
    case DType::kUInt8: f(uint8_t()); break;
    case DType::kInt8: f(int8_t()); break;
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace symfocal
