"""numba kernels: each primitive has a CPU twin and (where built) a CUDA twin of one contract."""
