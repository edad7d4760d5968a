// The CUDA weighted-sum kernel and its launcher (contract in weighted_sum_cuda.h; the per-thread
// body, shared with the host-side tests, is in weighted_sum_kernel.h).
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/aggregate/weighted_sum_kernel.h"
#include "hetrain/common/check.h"
#include "hetrain/common/error.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace hetrain {
namespace {

constexpr int kThreadsPerBlock = 256;

// Pointers and weights are read by every thread: one copy per block in shared memory.
template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    weighted_sum_kernel(const void *const *table, int n, int64_t offset, float *out, int64_t length,
                        kernel::VectorPlan plan) {
  extern __shared__ unsigned char shared[];
  const void **inputs = reinterpret_cast<const void **>(shared);
  float *weights = reinterpret_cast<float *>(inputs + n);
  const float *table_weights = reinterpret_cast<const float *>(table + n);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    inputs[i] = table[i];
    weights[i] = table_weights[i];
  }
  __syncthreads();
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t threads = static_cast<int64_t>(gridDim.x) * blockDim.x;
  kernel::weighted_sum_thread<T>(inputs, weights, n, offset, out, length, plan, thread, threads);
}

size_t table_bytes(int n) { return static_cast<size_t>(n) * (sizeof(void *) + sizeof(float)); }

cudaStream_t as_stream(void *s) { return static_cast<cudaStream_t>(s); }

template <typename T> int occupancy(int n) {
  int blocks = 0;
  CHECK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, weighted_sum_kernel<T>,
                                                           kThreadsPerBlock, table_bytes(n)));
  return std::max(1, blocks);
}

template <typename T>
void launch(const void *const *table, int n, int64_t offset, float *out, int64_t length,
            const kernel::VectorPlan &plan, int sm_count, int blocks_per_sm, cudaStream_t stream) {
  // Enough threads for one element or vector each, but no more blocks than fit on the device at
  // once: the grid-stride loop covers the rest without paying for block launches.
  const int64_t work = std::max(plan.vectors, length - plan.vectors * T::kPerVector);
  const int64_t wanted = (work + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int blocks = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(wanted, int64_t{sm_count} * blocks_per_sm)));
  weighted_sum_kernel<T>
      <<<blocks, kThreadsPerBlock, table_bytes(n), stream>>>(table, n, offset, out, length, plan);
  CHECK_CUDA(cudaGetLastError());
}

} // namespace

int cuda_devices(std::string *why) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    cudaGetLastError(); // no driver / no device is a state, not an error: clear it
    if (why)
      *why = std::string("no usable CUDA device (CUDA runtime: ") + cudaGetErrorString(rc) + ")";
    return 0;
  }
  if (count == 0 && why)
    *why = "CUDA runtime sees no device";
  return count;
}

void use_cuda_device(int device) { CHECK_CUDA(cudaSetDevice(device)); }
void synchronize_cuda_device() { CHECK_CUDA(cudaDeviceSynchronize()); }

DeviceWeightedSum::DeviceWeightedSum(int max_inputs) : max_inputs_(max_inputs) {
  // 48 KiB of shared memory per block without opting in: 4096 inputs at 12 bytes each.
  if (max_inputs < 1 || max_inputs > 4096)
    throw std::invalid_argument("DeviceWeightedSum: between 1 and 4096 inputs");
  CHECK_CUDA(cudaMalloc(&device_table_, table_bytes(max_inputs)));
  CHECK_CUDA(cudaHostAlloc(&staging_, table_bytes(max_inputs), cudaHostAllocDefault));
  cudaEvent_t event;
  CHECK_CUDA(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  event_ = event;
  int device = 0;
  CHECK_CUDA(cudaGetDevice(&device));
  CHECK_CUDA(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
}

DeviceWeightedSum::~DeviceWeightedSum() {
  // Destructors do not throw: a failure here has no one left to tell.
  if (event_) {
    cudaEventSynchronize(static_cast<cudaEvent_t>(event_));
    cudaEventDestroy(static_cast<cudaEvent_t>(event_));
  }
  cudaFreeHost(staging_);
  cudaFree(device_table_);
}

void DeviceWeightedSum::set_inputs(const std::vector<const void *> &device_inputs, DType dtype,
                                   const std::vector<float> &weights, void *stream) {
  const int n = static_cast<int>(device_inputs.size());
  if (n < 1 || n > max_inputs_ || weights.size() != device_inputs.size())
    throw std::invalid_argument("DeviceWeightedSum::set_inputs: 1..max_inputs inputs, one weight "
                                "each");
  for (const void *p : device_inputs)
    if (reinterpret_cast<uintptr_t>(p) % dtype_bytes(dtype) != 0)
      throw std::invalid_argument("DeviceWeightedSum: an input is not aligned to its element");
  // The previous table may still be on its way to the device: wait before overwriting it.
  CHECK_CUDA(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)));
  auto *bytes = static_cast<unsigned char *>(staging_);
  std::memcpy(bytes, device_inputs.data(), sizeof(void *) * static_cast<size_t>(n));
  std::memcpy(bytes + sizeof(void *) * static_cast<size_t>(n), weights.data(),
              sizeof(float) * static_cast<size_t>(n));
  CHECK_CUDA(cudaMemcpyAsync(device_table_, staging_, table_bytes(n), cudaMemcpyHostToDevice,
                             as_stream(stream)));
  CHECK_CUDA(cudaEventRecord(static_cast<cudaEvent_t>(event_), as_stream(stream)));
  host_inputs_ = device_inputs;
  n_ = n;
  if (dtype != dtype_ || blocks_per_sm_ == 0) {
    dtype_ = dtype;
    blocks_per_sm_ = dtype == DType::kFloat32    ? occupancy<kernel::Fp32>(max_inputs_)
                     : dtype == DType::kBFloat16 ? occupancy<kernel::Bf16>(max_inputs_)
                                                 : occupancy<kernel::Fp16>(max_inputs_);
  }
}

void DeviceWeightedSum::run(int64_t offset, float *device_out, int64_t length, void *stream) {
  if (n_ == 0)
    throw std::logic_error("DeviceWeightedSum::run before set_inputs");
  if (length <= 0)
    return;
  if (reinterpret_cast<uintptr_t>(device_out) % sizeof(float) != 0)
    throw std::invalid_argument("DeviceWeightedSum: output not aligned to float");
  const auto *table = static_cast<const void *const *>(device_table_);
  const kernel::VectorPlan plan = kernel::plan_vectors(
      host_inputs_.data(), n_, static_cast<int>(dtype_bytes(dtype_)), offset, device_out, length);
  switch (dtype_) {
  case DType::kFloat32:
    return launch<kernel::Fp32>(table, n_, offset, device_out, length, plan, sm_count_,
                                blocks_per_sm_, as_stream(stream));
  case DType::kBFloat16:
    return launch<kernel::Bf16>(table, n_, offset, device_out, length, plan, sm_count_,
                                blocks_per_sm_, as_stream(stream));
  case DType::kFloat16:
    return launch<kernel::Fp16>(table, n_, offset, device_out, length, plan, sm_count_,
                                blocks_per_sm_, as_stream(stream));
  }
}

DeviceMemory::DeviceMemory(size_t bytes) : bytes_(bytes) {
  CHECK_CUDA(cudaMalloc(&ptr_, std::max<size_t>(bytes, 1)));
}
DeviceMemory::~DeviceMemory() { cudaFree(ptr_); }

PinnedMemory::PinnedMemory(size_t bytes) : bytes_(bytes) {
  CHECK_CUDA(cudaHostAlloc(&ptr_, std::max<size_t>(bytes, 1), cudaHostAllocDefault));
}
PinnedMemory::~PinnedMemory() { cudaFreeHost(ptr_); }

CudaStream::CudaStream() {
  cudaStream_t s;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
}
CudaStream::~CudaStream() {
  cudaStreamSynchronize(as_stream(stream_));
  cudaStreamDestroy(as_stream(stream_));
}
void CudaStream::copy_to_device(void *dst, const void *src, size_t bytes) {
  CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, as_stream(stream_)));
}
void CudaStream::copy_to_host(void *dst, const void *src, size_t bytes) {
  CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream_)));
}
void CudaStream::copy_on_device(void *dst, const void *src, size_t bytes) {
  CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, as_stream(stream_)));
}
void CudaStream::synchronize() { CHECK_CUDA(cudaStreamSynchronize(as_stream(stream_))); }

} // namespace hetrain
