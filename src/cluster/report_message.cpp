#include "hetrain/cluster/report_message.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

namespace hetrain {

TrainerReport make_trainer_report(int rank, const NodeReport &node, const ProbeResult &probe,
                                  const GpuInfo *gpu) {
  TrainerReport report;
  report.rank = rank;
  report.pid = node.pid;
  report.host = node.host;
  report.cpu_model = node.cpu_model;
  report.device = gpu ? gpu->name : fmt::format("cpu ({} cores)", node.usable_cores);
  report.blas = node.blas.name;
  report.usable_cores = node.usable_cores;
  report.mem_available = node.mem_available;
  report.swap_free = node.swap_free;
  report.gpu_count = static_cast<int>(node.gpus.size());
  report.device_memory_free = gpu ? gpu->memory_free : node.mem_available;
  report.cpu_score = node.cpu_score;
  report.matmul_gflops = node.matmul_gflops;
  report.probe_samples_per_sec = probe.samples_per_sec;
  report.probe_peak_bytes = probe.peak_bytes;
  report.gemm_tflops_fp16 = node.gemm_tflops_fp16;
  report.gemm_tflops_fp32 = node.gemm_tflops_fp32;
  report.h2d_gbps = node.h2d_gbps;
  report.bf16 = gpu ? gpu->bf16 : node.cpu_bf16;
  return report;
}
namespace {

// Explicit little-endian packing: the layout must not depend on a compiler's struct padding.
class Writer {
public:
  template <typename T> void put(T value) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));
    bytes.insert(bytes.end(), raw, raw + sizeof(T)); // x86-64 and aarch64 are little-endian
  }
  void text(const std::string &s, size_t width) {
    std::string field = s.substr(0, width - 1);
    field.resize(width, '\0');
    bytes.insert(bytes.end(), field.begin(), field.end());
  }
  std::vector<uint8_t> bytes;
};

class Reader {
public:
  explicit Reader(const std::vector<uint8_t> &b) : bytes(b) {}
  template <typename T> T get() {
    T value;
    std::memcpy(&value, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return value;
  }
  std::string text(size_t width) {
    const char *p = reinterpret_cast<const char *>(bytes.data() + at);
    at += width;
    size_t n = strnlen(p, width);
    if (n == width)
      throw UserError("report message: a text field is not terminated");
    return std::string(p, n);
  }
  const std::vector<uint8_t> &bytes;
  size_t at = 0;
};

} // namespace

std::vector<uint8_t> encode_report(const TrainerReport &r) {
  Writer w;
  w.put<uint32_t>(kReportMagic);
  w.put<uint32_t>(kProtocolVersion);
  w.put<int32_t>(r.rank);
  w.put<int64_t>(r.pid);
  w.put<int32_t>(r.usable_cores);
  w.put<int64_t>(r.mem_available);
  w.put<int64_t>(r.swap_free);
  w.put<int32_t>(r.gpu_count);
  w.put<int64_t>(r.device_memory_free);
  w.put<double>(r.cpu_score);
  w.put<double>(r.matmul_gflops);
  w.put<double>(r.probe_samples_per_sec);
  w.put<double>(r.probe_peak_bytes);
  w.put<double>(r.gemm_tflops_fp16);
  w.put<double>(r.gemm_tflops_fp32);
  w.put<double>(r.h2d_gbps);
  w.put<int32_t>(r.bf16 ? 1 : 0);
  w.text(r.host, 64);
  w.text(r.cpu_model, 128);
  w.text(r.device, 96);
  w.text(r.blas, 160);
  return w.bytes;
}

TrainerReport decode_report(const std::vector<uint8_t> &bytes) {
  if (bytes.size() < 8)
    throw UserError(fmt::format("report message: {} bytes is too short", bytes.size()));
  Reader in(bytes);
  auto magic = in.get<uint32_t>();
  if (magic != kReportMagic)
    throw UserError(
        fmt::format("report message: bad magic 0x{:08x} (not a hetrain report)", magic));
  auto version = in.get<uint32_t>();
  if (version != kProtocolVersion)
    throw UserError(fmt::format("report message: protocol version {}, this hetrain speaks {}",
                                version, kProtocolVersion));
  if (bytes.size() != kReportMessageBytes)
    throw UserError(
        fmt::format("report message: {} bytes, expected {}", bytes.size(), kReportMessageBytes));
  TrainerReport r;
  r.rank = in.get<int32_t>();
  r.pid = in.get<int64_t>();
  r.usable_cores = in.get<int32_t>();
  r.mem_available = in.get<int64_t>();
  r.swap_free = in.get<int64_t>();
  r.gpu_count = in.get<int32_t>();
  r.device_memory_free = in.get<int64_t>();
  r.cpu_score = in.get<double>();
  r.matmul_gflops = in.get<double>();
  r.probe_samples_per_sec = in.get<double>();
  r.probe_peak_bytes = in.get<double>();
  r.gemm_tflops_fp16 = in.get<double>();
  r.gemm_tflops_fp32 = in.get<double>();
  r.h2d_gbps = in.get<double>();
  r.bf16 = (in.get<int32_t>() & 1) != 0;
  r.host = in.text(64);
  r.cpu_model = in.text(128);
  r.device = in.text(96);
  r.blas = in.text(160);
  if (r.usable_cores < 0 || r.gpu_count < 0 || r.mem_available < 0 ||
      !std::isfinite(r.probe_samples_per_sec) || r.probe_samples_per_sec < 0 ||
      !std::isfinite(r.probe_peak_bytes) || r.probe_peak_bytes < 0 ||
      !std::isfinite(r.gemm_tflops_fp16) || !std::isfinite(r.gemm_tflops_fp32) ||
      !std::isfinite(r.h2d_gbps))
    throw UserError("report message: a field is out of range");
  return r;
}

} // namespace hetrain
