// The softmax problem (csrc/softmax/problem.cpp) in a file of its own name: torch's JIT builder names
// objects after their sources' base names, and both families' are problem.cpp.
#include "softmax/problem.cpp"
