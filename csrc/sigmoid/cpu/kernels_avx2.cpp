// The CPU kernels for x86-64 with AVX2 and FMA; setup.py compiles this file
// alone with -mavx2 -mfma, and dispatch.cpp runs it only where the processor has them.
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "sigmoid/cpu/kernels_impl.h"
