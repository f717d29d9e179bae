// The softmax CPU kernels for any processor: ATen's portable vector type.
#define CPU_CAPABILITY DEFAULT
#include "softmax/cpu/kernels_impl.h"
