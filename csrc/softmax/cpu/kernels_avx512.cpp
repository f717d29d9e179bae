// The softmax CPU kernels for x86-64 with AVX-512; setup.py compiles this file alone
// with -mavx512*, and dispatch.cpp runs it only where the processor has it.
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "softmax/cpu/kernels_impl.h"
