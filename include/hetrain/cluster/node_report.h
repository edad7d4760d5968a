// What a node is and how fast it is (DESIGN §3). `hetrain bench` prints it; the distributed run
// sends it to rank 0 for admission and planning.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

struct GpuInfo {
  int index = 0;
  std::string name, uuid;
  int64_t memory_total = 0, memory_free = 0; // bytes
  int cc_major = 0, cc_minor = 0, sm_count = 0;
  bool bf16 = false; // bfloat16 arithmetic in hardware (compute capability 8.0 and later)
  // run_gpu_benchmarks: cuBLAS GEMM on random data, and pinned host<->device copies.
  double gemm_tflops_fp16 = 0, gemm_tflops_fp32 = 0, gemm_tflops_fp64 = 0;
  double h2d_gbps = 0, d2h_gbps = 0;
  int gemm_size = 0; // n of the n x n x n products
};

struct BlasInfo {
  std::string library; // resolved path of the BLAS shared object LibTorch calls
  std::string name;    // "OpenBLAS 0.3.21 (openmp)", "reference BLAS (netlib)", ...
  bool optimized = false;
};

struct NodeReport {
  std::string host;
  int64_t pid = 0;
  std::string cpu_model;
  int usable_cores = 0;
  int64_t mem_available = 0, swap_free = 0; // bytes
  std::string torch_version;
  BlasInfo blas;
  bool cpu_bf16 = false;  // AVX512-BF16 or AMX-BF16 in the CPU's flags
  std::string gpu_status; // why no GPU is listed, when none is
  std::vector<GpuInfo> gpus;
  // Benchmarks, each time-capped.
  double cpu_score = 0;     // fixed-work multi-threaded loop, work units per second
  double matmul_gflops = 0; // 256x784x128 float32 matrix products through LibTorch
  // The GPU this process uses (the first one benchmarked), copied from its GpuInfo.
  double gemm_tflops_fp16 = 0, gemm_tflops_fp32 = 0, gemm_tflops_fp64 = 0; // cuBLAS
  double h2d_gbps = 0, d2h_gbps = 0;                                       // pinned copies
};

// Host facts only (fast): CPU, memory, BLAS, GPUs.
NodeReport probe_node();
// Adds the CPU benchmarks, each capped at about `seconds_cap`.
void run_cpu_benchmarks(NodeReport &report, double seconds_cap = 1.0);
// GPU benchmarks of device `device` (-1: every visible GPU), each of the five (GEMM FP16, FP32,
// FP64, H2D, D2H) capped at about `seconds_cap`; matrix sizes from the device's free memory.
// Without CUDA or a GPU it does nothing.
void run_gpu_benchmarks(NodeReport &report, int device, double seconds_cap = 0.5);
BlasInfo detect_blas();
std::vector<GpuInfo> probe_gpus(std::string &status);
bool cpu_has_bf16();

std::string report_to_json(const NodeReport &report, int indent = 2);
std::string report_to_text(const NodeReport &report);

} // namespace hetrain
