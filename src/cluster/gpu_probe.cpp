// GPU facts and benchmarks through the CUDA runtime and cuBLAS (CUDA builds only); without CUDA
// the status says why no GPU is listed. NVML is not needed for anything reported here.
#define HETRAIN_CUDA_HOST_CODE 1 // CHECK_CUDA / CHECK_CUBLAS in this host-compiled file
#include "hetrain/cluster/node_report.h"
#include "hetrain/common/check.h"
#include "hetrain/common/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#ifdef HETRAIN_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#endif

namespace hetrain {

bool cpu_has_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0)
      continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string flag;
    while (words >> flag)
      if (flag == "avx512_bf16" || flag == "amx_bf16")
        return true;
    return false;
  }
  return false;
}

std::vector<GpuInfo> probe_gpus(std::string &status) {
  std::vector<GpuInfo> gpus;
#ifdef HETRAIN_WITH_CUDA
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    // No driver or no device is a normal state for a CPU node, not an error.
    status = fmt::format("CUDA runtime: {}", cudaGetErrorString(rc));
    cudaGetLastError();
    return gpus;
  }
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess)
      continue;
    GpuInfo g;
    g.index = d;
    g.name = prop.name;
    const auto *u = reinterpret_cast<const unsigned char *>(prop.uuid.bytes);
    g.uuid = fmt::format("GPU-{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
                         "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                         u[12], u[13], u[14], u[15]);
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.sm_count = prop.multiProcessorCount;
    g.bf16 = prop.major >= 8;
    g.memory_total = static_cast<int64_t>(prop.totalGlobalMem);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(d) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      g.memory_free = static_cast<int64_t>(free_bytes);
    gpus.push_back(g);
  }
  status = count > 0 ? fmt::format("{} visible", count) : "CUDA runtime sees no device";
#else
  status = "built without CUDA";
#endif
  return gpus;
}

#ifdef HETRAIN_WITH_CUDA
namespace {

// Times `op` with CUDA events: one warm-up, then batches until `cap` seconds; returns seconds
// per call.
template <typename Op> double time_device(Op op, double cap) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  op();
  CHECK_CUDA(cudaDeviceSynchronize());
  int calls = 0, batch = 1;
  float total_ms = 0;
  while (total_ms < cap * 1000 && calls < 10000) {
    CHECK_CUDA(cudaEventRecord(start));
    for (int i = 0; i < batch; ++i)
      op();
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    total_ms += ms;
    calls += batch;
    batch = std::min(batch * 2, 64);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return total_ms / 1000.0 / calls;
}

void benchmark_gpu(GpuInfo &g, double cap) {
  CHECK_CUDA(cudaSetDevice(g.index));
  size_t free_bytes = 0, total_bytes = 0;
  CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  // Three n x n matrices of doubles in at most an eighth of the free memory, n <= 8192, a
  // multiple of 256 (the size the tensor cores like).
  const double limit = static_cast<double>(free_bytes) / 8 / (3 * sizeof(double));
  const int n = std::min(8192, static_cast<int>(std::sqrt(limit)) / 256 * 256);
  if (n < 256) {
    log_warn("gpu {}: {} MiB free is too little to benchmark", g.index, free_bytes >> 20);
    return;
  }
  const size_t elements = static_cast<size_t>(n) * n, bytes = elements * sizeof(double);
  // Random data, not zeros (tensor cores run faster on zeros). The 16-bit words all lie in
  // [0x3800, 0x3fff] with a random sign: fp16 values of 0.5 to 2, and valid normal numbers when
  // the same bytes are read as fp32 or fp64, so one buffer serves all three products.
  std::vector<uint16_t> host(bytes / 2);
  uint64_t state = 0x9e3779b97f4a7c15ull; // xorshift64: fast enough for half a GiB at startup
  for (size_t k = 0; k < host.size(); k += 4) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    for (size_t q = 0; q < 4 && k + q < host.size(); ++q) {
      const auto word = static_cast<uint16_t>(state >> (16 * q));
      host[k + q] = static_cast<uint16_t>(0x3800u | (word & 0x87ffu)); // sign, 0x38xx-0x3fxx
    }
  }
  void *a = nullptr, *b = nullptr, *c = nullptr;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  CHECK_CUDA(cudaMalloc(&c, bytes));
  CHECK_CUDA(cudaMemcpy(a, host.data(), bytes, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(b, host.data(), bytes, cudaMemcpyHostToDevice));
  cublasHandle_t handle;
  CHECK_CUBLAS(cublasCreate(&handle));
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  const float alpha = 1.0f, beta = 0.0f;
  const double alpha_d = 1.0, beta_d = 0.0;
  g.gemm_size = n;
  g.gemm_tflops_fp16 =
      flops / 1e12 /
      time_device(
          [&] {
            CHECK_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a,
                                      CUDA_R_16F, n, b, CUDA_R_16F, n, &beta, c, CUDA_R_16F, n,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
          },
          cap);
  // Plain FP32 (cuBLAS's default math mode does not use TF32).
  g.gemm_tflops_fp32 = flops / 1e12 /
                       time_device(
                           [&] {
                             CHECK_CUBLAS(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n,
                                                      &alpha, static_cast<const float *>(a), n,
                                                      static_cast<const float *>(b), n, &beta,
                                                      static_cast<float *>(c), n));
                           },
                           cap);
  g.gemm_tflops_fp64 = flops / 1e12 /
                       time_device(
                           [&] {
                             CHECK_CUBLAS(cublasDgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n,
                                                      &alpha_d, static_cast<const double *>(a), n,
                                                      static_cast<const double *>(b), n, &beta_d,
                                                      static_cast<double *>(c), n));
                           },
                           cap);
  CHECK_CUBLAS(cublasDestroy(handle));
  // Pinned copies of up to 256 MiB each way.
  const size_t copy_bytes = std::min<size_t>(bytes, size_t{256} << 20);
  void *pinned = nullptr;
  CHECK_CUDA(cudaHostAlloc(&pinned, copy_bytes, cudaHostAllocDefault));
  std::memset(pinned, 1, copy_bytes);
  g.h2d_gbps =
      static_cast<double>(copy_bytes) / 1e9 /
      time_device(
          [&] { CHECK_CUDA(cudaMemcpyAsync(a, pinned, copy_bytes, cudaMemcpyHostToDevice)); }, cap);
  g.d2h_gbps =
      static_cast<double>(copy_bytes) / 1e9 /
      time_device(
          [&] { CHECK_CUDA(cudaMemcpyAsync(pinned, a, copy_bytes, cudaMemcpyDeviceToHost)); }, cap);
  CHECK_CUDA(cudaFreeHost(pinned));
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  CHECK_CUDA(cudaFree(c));
}

} // namespace
#endif

void run_gpu_benchmarks(NodeReport &report, int device, double seconds_cap) {
#ifdef HETRAIN_WITH_CUDA
  bool first = true;
  for (GpuInfo &g : report.gpus) {
    if (device >= 0 && g.index != device)
      continue;
    benchmark_gpu(g, seconds_cap);
    if (first) {
      report.gemm_tflops_fp16 = g.gemm_tflops_fp16;
      report.gemm_tflops_fp32 = g.gemm_tflops_fp32;
      report.gemm_tflops_fp64 = g.gemm_tflops_fp64;
      report.h2d_gbps = g.h2d_gbps;
      report.d2h_gbps = g.d2h_gbps;
      first = false;
    }
  }
#else
  (void)report;
  (void)device;
  (void)seconds_cap;
#endif
}

} // namespace hetrain
