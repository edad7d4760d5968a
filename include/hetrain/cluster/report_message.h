// The NodeReport on the wire (DESIGN §3): a fixed-layout, versioned message, so that rank 0 can
// refuse a trainer built from another hetrain version instead of misreading its bytes.
//
// Layout (little-endian, packed, kReportMessageBytes long):
//   u32 magic "HTRP" | u32 protocol version | i32 rank | i64 pid | i32 usable cores
//   i64 mem_available | i64 swap_free | i32 gpu count | i64 gpu memory free (device used)
//   f64 cpu score | f64 matmul GFLOP/s | f64 probe samples/s | f64 probe peak bytes
//   f64 GEMM TFLOP/s fp16 | f64 GEMM TFLOP/s fp32 | f64 pinned H2D GB/s | i32 flags (bit 0: bf16)
//   char[64] host | char[128] cpu model | char[96] device name | char[160] blas
#pragma once

#include "hetrain/cluster/node_report.h"
#include "hetrain/cluster/training_probe.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

inline constexpr uint32_t kReportMagic = 0x50525448; // "HTRP" read as little-endian bytes
inline constexpr uint32_t kProtocolVersion = 2;      // 2: GPU benchmark figures, bf16 flag
inline constexpr size_t kReportMessageBytes =
    4 + 4 + 4 + 8 + 4 + 8 + 8 + 4 + 8 + 8 * 4 + 8 * 3 + 4 + 64 + 128 + 96 + 160;

// What admission and the plan need of a trainer, decoded from its message.
struct TrainerReport {
  int rank = 0;
  int64_t pid = 0;
  std::string host, cpu_model, device, blas;
  int usable_cores = 0;
  int64_t mem_available = 0, swap_free = 0;
  int gpu_count = 0;
  int64_t device_memory_free = 0; // bytes on the device it trains on (MemAvailable for CPU)
  double cpu_score = 0, matmul_gflops = 0;
  double probe_samples_per_sec = 0; // the training probe: what the plan uses
  double probe_peak_bytes = 0;      // memory of the model + one micro-batch
  // The trainer's device: cuBLAS figures (0 on a CPU trainer) and bf16 arithmetic in hardware.
  double gemm_tflops_fp16 = 0, gemm_tflops_fp32 = 0, h2d_gbps = 0;
  bool bf16 = false;
};

// A trainer's report from what it measured: its node, the training probe, and the GPU it trains
// on (null on a CPU trainer).
TrainerReport make_trainer_report(int rank, const NodeReport &node, const ProbeResult &probe,
                                  const GpuInfo *gpu);

std::vector<uint8_t> encode_report(const TrainerReport &report);
// Throws UserError naming the problem: wrong size, bad magic, other protocol version, bad field.
TrainerReport decode_report(const std::vector<uint8_t> &bytes);

} // namespace hetrain
