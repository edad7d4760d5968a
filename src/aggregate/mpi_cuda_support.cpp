// Whether the MPI library moves device memory itself. Open MPI declares MPIX_Query_cuda_support in
// <mpi-ext.h> when it was built with CUDA; Debian's is not, and other libraries may lack the
// header.
#include "hetrain/aggregate/weighted_sum_cuda.h"

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

namespace hetrain {

bool mpi_is_cuda_aware() {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

} // namespace hetrain
