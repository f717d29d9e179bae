// The CPU kernels for any processor: ATen's portable vector type.
#define CPU_CAPABILITY DEFAULT
#include "sigmoid/cpu/kernels_impl.h"
