// One checking macro per library (llm.c style). Each names the failed call, its file:line, the
// rank and host, and the library's own error string, then throws LibraryError so that the
// caller can clean up (remove a temporary file, abort the MPI job) before the process exits.
//
//   hid_t f = CHECK_HDF5(H5Fopen(...)); a negative hid_t / herr_t fails; the value is returned
//   CHECK_CUDA(cudaMalloc(...));       CUDA builds only
//   CHECK_CUBLAS(cublasSgemm(...));    CUDA builds only
//
// CHECK_MPI lives with the MPI code, in comm/check_mpi.h.
#pragma once

#include <string>

namespace hetrain::detail {

[[noreturn]] void fail_hdf5(const char *call, const char *file, int line);
[[noreturn]] void fail_library(const char *library, const std::string &what, const char *call,
                               const char *file, int line);

template <typename T> T check_hdf5(T value, const char *call, const char *file, int line) {
  if (value < 0)
    fail_hdf5(call, file, line);
  return value;
}

// Silences HDF5's own printing of its error stack; CHECK_HDF5 reports instead. Idempotent.
void quiet_hdf5_errors();

} // namespace hetrain::detail

#define CHECK_HDF5(call) ::hetrain::detail::check_hdf5((call), #call, __FILE__, __LINE__)

#if defined(HETRAIN_WITH_CUDA) && (defined(__CUDACC__) || defined(HETRAIN_CUDA_HOST_CODE))
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace hetrain::detail {
inline void check_cuda(cudaError_t code, const char *call, const char *file, int line) {
  if (code != cudaSuccess)
    fail_library("CUDA", std::string(cudaGetErrorName(code)) + ": " + cudaGetErrorString(code),
                 call, file, line);
}
inline void check_cublas(cublasStatus_t code, const char *call, const char *file, int line) {
  if (code != CUBLAS_STATUS_SUCCESS)
    fail_library("cuBLAS", cublasGetStatusString(code), call, file, line);
}
} // namespace hetrain::detail

#define CHECK_CUDA(call) ::hetrain::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define CHECK_CUBLAS(call) ::hetrain::detail::check_cublas((call), #call, __FILE__, __LINE__)
#endif
