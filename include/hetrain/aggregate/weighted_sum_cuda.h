// The weighted sum on a CUDA device (DESIGN §10), and the few pieces of device memory the
// aggregator needs around it. Declared in every build; without CUDA, cuda_devices() says so and
// the classes throw when constructed, so callers need no #ifdef of their own. No CUDA header is
// included here: streams are passed as void* (a cudaStream_t; nullptr = the default stream).
#pragma once

#include "hetrain/aggregate/weighted_sum.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

// Number of visible CUDA devices; 0 with `why` set when there are none or no CUDA in this build.
int cuda_devices(std::string *why = nullptr);
// Whether this build's MPI library says it can send and receive device memory
// (MPIX_Query_cuda_support); false when the library cannot tell.
bool mpi_is_cuda_aware();

// Owns a device table of up to `max_inputs` input pointers and weights, and launches the kernel.
//   DeviceWeightedSum sum(64);
//   sum.set_inputs(device_ptrs, DType::kFloat32, weights, stream);   // once per round
//   sum.run(offset, device_out + offset, length, stream);             // once per chunk
// run() computes out[j] = sum_i w_i * inputs[i][offset + j] for j in [0, length). Any length, any
// natural alignment; grid from the device's SM count. Errors go through CHECK_CUDA.
class DeviceWeightedSum {
public:
  explicit DeviceWeightedSum(int max_inputs);
  ~DeviceWeightedSum();
  DeviceWeightedSum(const DeviceWeightedSum &) = delete;
  DeviceWeightedSum &operator=(const DeviceWeightedSum &) = delete;

  void set_inputs(const std::vector<const void *> &device_inputs, DType dtype,
                  const std::vector<float> &weights, void *stream);
  void run(int64_t offset, float *device_out, int64_t length, void *stream);
  int max_inputs() const { return max_inputs_; }

private:
  int max_inputs_ = 0, n_ = 0;
  DType dtype_ = DType::kFloat32;
  std::vector<const void *> host_inputs_; // for the alignment plan
  void *device_table_ = nullptr;          // n pointers, then n floats
  void *staging_ = nullptr;               // pinned copy of the table, in flight until event_
  void *event_ = nullptr;
  int sm_count_ = 0, blocks_per_sm_ = 0;
};

// RAII device and pinned host memory (cudaMalloc / cudaHostAlloc).
class DeviceMemory {
public:
  explicit DeviceMemory(size_t bytes);
  ~DeviceMemory();
  DeviceMemory(const DeviceMemory &) = delete;
  DeviceMemory &operator=(const DeviceMemory &) = delete;
  void *get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

private:
  void *ptr_ = nullptr;
  size_t bytes_ = 0;
};
class PinnedMemory {
public:
  explicit PinnedMemory(size_t bytes);
  ~PinnedMemory();
  PinnedMemory(const PinnedMemory &) = delete;
  PinnedMemory &operator=(const PinnedMemory &) = delete;
  void *get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

private:
  void *ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A non-blocking CUDA stream with the few operations the aggregator uses.
class CudaStream {
public:
  CudaStream();
  ~CudaStream();
  CudaStream(const CudaStream &) = delete;
  CudaStream &operator=(const CudaStream &) = delete;
  void *get() const { return stream_; }
  void copy_to_device(void *dst, const void *src, size_t bytes);
  void copy_to_host(void *dst, const void *src, size_t bytes);
  void copy_on_device(void *dst, const void *src, size_t bytes);
  void synchronize();

private:
  void *stream_ = nullptr;
};

// Selects the device for this host thread (cudaSetDevice).
void use_cuda_device(int device);
// Waits for all work on the current device (other libraries' streams included).
void synchronize_cuda_device();

} // namespace hetrain
