// The CPU kernels for x86-64 with AVX-512; setup.py compiles this file alone
// with -mavx512*, and dispatch.cpp runs it only where the processor has it.
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "sigmoid/cpu/kernels_impl.h"
