#include "hetrain/cluster/node_report.h"

#include "hetrain/common/log.h"
#include "hetrain/common/system_info.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

namespace hetrain {
namespace {

using Clock = std::chrono::steady_clock;

std::string resolved_path(const char *path) {
  char buffer[PATH_MAX];
  if (path != nullptr && realpath(path, buffer) != nullptr)
    return buffer;
  return path ? path : "";
}

} // namespace

BlasInfo detect_blas() {
  BlasInfo info;
  // The object that the global symbol sgemm_ resolves to is the BLAS LibTorch's matrix products
  // call (Debian switches it with update-alternatives libblas.so.3).
  void *sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info where{};
  if (sgemm == nullptr || dladdr(sgemm, &where) == 0) {
    info.name = "no BLAS loaded (LibTorch uses its own kernels)";
    return info;
  }
  info.library = resolved_path(where.dli_fname);
  using ConfigFn = char *(*)();
  using ParallelFn = int (*)();
  if (auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    std::string text = config();
    const char *modes[] = {"sequential", "pthreads", "openmp"};
    int mode = -1;
    if (auto parallel = reinterpret_cast<ParallelFn>(dlsym(RTLD_DEFAULT, "openblas_get_parallel")))
      mode = parallel();
    info.name = fmt::format("{} ({})", text, mode >= 0 && mode <= 2 ? modes[mode] : "unknown");
    info.optimized = true;
  } else if (dlsym(RTLD_DEFAULT, "bli_info_get_version_str") != nullptr) {
    info.name = "BLIS";
    info.optimized = true;
  } else if (dlsym(RTLD_DEFAULT, "mkl_get_version") != nullptr) {
    info.name = "Intel MKL";
    info.optimized = true;
  } else if (info.library.find("/blas/") != std::string::npos ||
             info.library.find("libblas.so") != std::string::npos) {
    info.name = "reference BLAS (netlib): slow; install libopenblas0-openmp";
  } else {
    info.name = "unknown BLAS";
  }
  return info;
}

NodeReport probe_node() {
  NodeReport r;
  r.host = process_identity().host;
  r.pid = getpid();
  r.cpu_model = cpu_model_name();
  r.usable_cores = usable_cores();
  r.mem_available = meminfo_bytes("MemAvailable");
  r.swap_free = meminfo_bytes("SwapFree");
  r.torch_version =
      fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
  r.blas = detect_blas();
  r.gpus = probe_gpus(r.gpu_status);
  r.cpu_bf16 = cpu_has_bf16();
  return r;
}

void run_cpu_benchmarks(NodeReport &r, double seconds_cap) {
  // CPU score: every usable core runs the same dependent floating-point chain; the score is
  // millions of iterations per second over all threads. Fixed work per chunk, capped in time.
  {
    const int threads = r.usable_cores > 0 ? r.usable_cores : 1;
    constexpr int64_t kChunk = 1 << 20;
    std::atomic<int64_t> chunks{0};
    std::atomic<bool> stop{false};
    std::atomic<double> sink{0};
    auto worker = [&] {
      double x = 1.0, y = 0.5;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int64_t i = 0; i < kChunk; ++i) {
          x = x * 1.0000001 + y;
          y = y * 0.9999999 - 1e-9 * x;
        }
        chunks.fetch_add(1, std::memory_order_relaxed);
      }
      sink = sink + x + y; // keeps the loop from being optimised away
    };
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back(worker);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds_cap / 2));
    stop = true;
    for (auto &t : pool)
      t.join();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.cpu_score = static_cast<double>(chunks.load() * kChunk) / seconds / 1e6;
  }
  // Matrix products through LibTorch (and so through the BLAS above): 256x784 by 784x128, the
  // shape of the mlp's first layer at a typical batch.
  {
    torch::NoGradGuard no_grad;
    auto a = torch::randn({256, 784});
    auto b = torch::randn({784, 128});
    for (int i = 0; i < 3; ++i)
      a.mm(b); // warm-up: thread pools, page faults
    int64_t products = 0;
    auto start = Clock::now();
    double seconds = 0;
    while (seconds < seconds_cap / 2) {
      for (int i = 0; i < 10; ++i)
        a.mm(b);
      products += 10;
      seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    r.matmul_gflops = 2.0 * 256 * 784 * 128 * static_cast<double>(products) / seconds / 1e9;
  }
}

std::string report_to_json(const NodeReport &r, int indent) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuInfo &g : r.gpus)
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"memory_total_bytes", g.memory_total},
                    {"memory_free_bytes", g.memory_free},
                    {"compute_capability", fmt::format("{}.{}", g.cc_major, g.cc_minor)},
                    {"sm_count", g.sm_count},
                    {"bf16", g.bf16},
                    {"gemm_size", g.gemm_size},
                    {"gemm_tflops",
                     {{"fp16", g.gemm_tflops_fp16},
                      {"fp32", g.gemm_tflops_fp32},
                      {"fp64", g.gemm_tflops_fp64}}},
                    {"pinned_copy_gbps", {{"h2d", g.h2d_gbps}, {"d2h", g.d2h_gbps}}}});
  nlohmann::json j{
      {"host", r.host},
      {"pid", r.pid},
      {"cpu_model", r.cpu_model},
      {"usable_cores", r.usable_cores},
      {"cpu_bf16", r.cpu_bf16},
      {"mem_available_bytes", r.mem_available},
      {"swap_free_bytes", r.swap_free},
      {"torch_version", r.torch_version},
      {"blas",
       {{"library", r.blas.library}, {"name", r.blas.name}, {"optimized", r.blas.optimized}}},
      {"gpu_status", r.gpu_status},
      {"gpus", gpus},
      {"cpu_score_mops", r.cpu_score},
      {"matmul_gflops", r.matmul_gflops},
      {"gemm_tflops",
       {{"fp16", r.gemm_tflops_fp16}, {"fp32", r.gemm_tflops_fp32}, {"fp64", r.gemm_tflops_fp64}}},
      {"pinned_copy_gbps", {{"h2d", r.h2d_gbps}, {"d2h", r.d2h_gbps}}}};
  return j.dump(indent);
}

std::string report_to_text(const NodeReport &r) {
  std::string out;
  auto line = [&](const std::string &key, const std::string &value) {
    out += fmt::format("  {:<16} {}\n", key, value);
  };
  out += fmt::format("node report for {} (pid {})\n", r.host, r.pid);
  line("cpu", fmt::format("{} ({} usable cores)", r.cpu_model, r.usable_cores));
  line("memory", fmt::format("{:.1f} GiB available, {:.1f} GiB swap free",
                             static_cast<double>(r.mem_available) / (1 << 30),
                             static_cast<double>(r.swap_free) / (1 << 30)));
  line("libtorch", r.torch_version);
  line("blas", fmt::format("{} [{}]", r.blas.name, r.blas.library));
  if (r.gpus.empty())
    line("gpus", fmt::format("none ({})", r.gpu_status));
  for (const GpuInfo &g : r.gpus)
    line(fmt::format("gpu {}", g.index),
         fmt::format("{} cc {}.{}, {} SMs, {:.1f}/{:.1f} GiB free, {}", g.name, g.cc_major,
                     g.cc_minor, g.sm_count, static_cast<double>(g.memory_free) / (1 << 30),
                     static_cast<double>(g.memory_total) / (1 << 30), g.uuid));
  for (const GpuInfo &g : r.gpus)
    if (g.gemm_size > 0)
      line(fmt::format("gpu {} bench", g.index),
           fmt::format("GEMM {}^3: {:.1f} TFLOP/s fp16, {:.1f} fp32, {:.1f} fp64; pinned copies "
                       "{:.1f} GB/s h2d, {:.1f} d2h",
                       g.gemm_size, g.gemm_tflops_fp16, g.gemm_tflops_fp32, g.gemm_tflops_fp64,
                       g.h2d_gbps, g.d2h_gbps));
  line("cpu score", fmt::format("{:.0f} M iterations/s", r.cpu_score));
  line("matmul", fmt::format("{:.1f} GFLOP/s (256x784x128 float32 via LibTorch)", r.matmul_gflops));
  return out;
}

} // namespace hetrain
