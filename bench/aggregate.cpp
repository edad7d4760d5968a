// bench/aggregate: how close the weighted sum comes to the memory system's copy speed.
//
// For n inputs of `elements` values it times the weighted sum (bytes moved = n inputs read + the
// fp32 output written) and, interleaved with it, a copy that moves the same number of bytes
// (memcpy over all cores on the CPU, cudaMemcpy device to device on the GPU), and prints the
// achieved bandwidths and their ratio as JSON. Goals (issue 4): >= 0.90 of the copy on the GPU for
// fp32 inputs, >= 0.80 on the CPU with all cores. Every timed result is checked against a float64
// reference on a sample of elements; a wrong answer exits 1.
//
//   build/bench_aggregate [--device cpu|cuda|both] [--elements N] [--inputs 2,4,8]
//                         [--dtypes fp32,bf16] [--repeats R] [--threads T] [--json FILE]
#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/aggregate/weighted_sum_kernel.h"
#include "hetrain/common/system_info.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

namespace {
using namespace hetrain;
using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Inputs filled with values exact in every dtype (small integers over 8), so fp32, bf16 and fp16
// share one reference.
std::vector<std::vector<uint8_t>> make_inputs(int n, int64_t elements, DType dtype) {
  std::vector<std::vector<uint8_t>> inputs(static_cast<size_t>(n));
  const size_t elem = dtype_bytes(dtype);
  for (int i = 0; i < n; ++i) {
    auto &buf = inputs[static_cast<size_t>(i)];
    buf.resize(static_cast<size_t>(elements) * elem);
    for (int64_t j = 0; j < elements; ++j) {
      const float f = static_cast<float>((j * 7 + i * 13) % 31 - 15) / 8.0f;
      if (dtype == DType::kFloat32) {
        std::memcpy(buf.data() + 4 * j, &f, 4);
      } else {
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        uint16_t h;
        if (dtype == DType::kBFloat16) {
          h = static_cast<uint16_t>(bits >> 16); // exact: these values have short mantissas
        } else {
          // sign | exponent rebiased 127 -> 15 | top 10 mantissa bits (exact for these values)
          const uint32_t sign = (bits >> 16) & 0x8000u, exponent = (bits >> 23) & 0xffu;
          h = exponent == 0 ? static_cast<uint16_t>(sign)
                            : static_cast<uint16_t>(sign | ((exponent - 112u) << 10) |
                                                    ((bits >> 13) & 0x3ffu));
        }
        std::memcpy(buf.data() + 2 * j, &h, 2);
      }
    }
  }
  return inputs;
}

float reference(int n, int64_t j, const std::vector<float> &weights) {
  double sum = 0;
  for (int i = 0; i < n; ++i)
    sum += double(weights[static_cast<size_t>(i)]) *
           (static_cast<double>((j * 7 + i * 13) % 31 - 15) / 8.0);
  return static_cast<float>(sum);
}

// Largest error relative to the sum of |terms| on a sample of 4099 elements.
double check(const float *out, int n, int64_t elements, const std::vector<float> &weights) {
  double worst = 0;
  for (int64_t j = 0; j < elements; j += std::max<int64_t>(1, elements / 4099)) {
    double scale = 0;
    for (int i = 0; i < n; ++i)
      scale += std::abs(double(weights[static_cast<size_t>(i)]) *
                        (static_cast<double>((j * 7 + i * 13) % 31 - 15) / 8.0));
    const double err = std::abs(double(out[j]) - reference(n, j, weights));
    if (!std::isfinite(out[j]))
      return INFINITY;
    worst = std::max(worst, err / std::max(scale, 1e-30));
  }
  return worst;
}

void parallel_memcpy(uint8_t *dst, const uint8_t *src, size_t bytes, int threads) {
  std::vector<std::thread> pool;
  const size_t per = (bytes + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  for (int t = 0; t < threads; ++t) {
    const size_t begin = static_cast<size_t>(t) * per;
    if (begin >= bytes)
      break;
    pool.emplace_back([=] { std::memcpy(dst + begin, src + begin, std::min(per, bytes - begin)); });
  }
  for (auto &t : pool)
    t.join();
}

struct Case {
  std::string device;
  DType dtype;
  int n;
  int64_t elements;
};

nlohmann::json result_json(const Case &c, double bytes, const std::vector<double> &t_sum,
                           const std::vector<double> &t_copy, double error, double goal) {
  const double sum_bw = bytes / median(t_sum) / 1e9, copy_bw = bytes / median(t_copy) / 1e9;
  return {{"device", c.device},
          {"dtype", dtype_name(c.dtype)},
          {"inputs", c.n},
          {"elements", c.elements},
          {"bytes_moved", bytes},
          {"weighted_sum_gbps", sum_bw},
          {"samples", t_sum.size()},
          {"copy_gbps", copy_bw},
          {"ratio", sum_bw / copy_bw},
          {"goal", goal},
          {"meets_goal", sum_bw / copy_bw >= goal},
          {"max_relative_error", error},
          {"correct", error <= 1e-6}};
}

nlohmann::json bench_cpu(const Case &c, int repeats, int threads) {
  const auto inputs = make_inputs(c.n, c.elements, c.dtype);
  std::vector<const void *> pointers;
  for (const auto &b : inputs)
    pointers.push_back(b.data());
  std::vector<float> weights;
  for (int i = 0; i < c.n; ++i)
    weights.push_back(1.0f / static_cast<float>(c.n) + 0.01f * static_cast<float>(i));
  std::vector<float> out(static_cast<size_t>(c.elements));
  const double bytes = static_cast<double>(c.elements) *
                       (static_cast<double>(c.n) * static_cast<double>(dtype_bytes(c.dtype)) + 4);
  // The copy moves the same bytes: half read, half written.
  const size_t copy_bytes = static_cast<size_t>(bytes / 2);
  std::vector<uint8_t> src(copy_bytes, 1), dst(copy_bytes, 0);
  std::vector<double> t_sum, t_copy;
  double error = 0;
  for (int r = 0; r < repeats + 1; ++r) { // the first round warms up (page faults) and is dropped
    std::fill(out.begin(), out.end(), NAN);
    auto a = Clock::now();
    weighted_sum_cpu(pointers, c.dtype, weights, out.data(), c.elements, threads);
    auto b = Clock::now();
    parallel_memcpy(dst.data(), src.data(), copy_bytes, threads);
    auto d = Clock::now();
    error = std::max(error, check(out.data(), c.n, c.elements, weights));
    if (r > 0) {
      t_sum.push_back(seconds(a, b));
      t_copy.push_back(seconds(b, d));
    }
  }
  return result_json(c, bytes, t_sum, t_copy, error, 0.80);
}

nlohmann::json bench_cuda(const Case &c, int repeats) {
  const auto inputs = make_inputs(c.n, c.elements, c.dtype);
  std::vector<float> weights;
  for (int i = 0; i < c.n; ++i)
    weights.push_back(1.0f / static_cast<float>(c.n) + 0.01f * static_cast<float>(i));
  CudaStream stream;
  std::vector<std::unique_ptr<DeviceMemory>> device_inputs;
  std::vector<const void *> pointers;
  for (const auto &b : inputs) {
    device_inputs.push_back(std::make_unique<DeviceMemory>(b.size()));
    stream.copy_to_device(device_inputs.back()->get(), b.data(), b.size());
    pointers.push_back(device_inputs.back()->get());
  }
  DeviceMemory out(static_cast<size_t>(c.elements) * 4);
  const double bytes = static_cast<double>(c.elements) *
                       (static_cast<double>(c.n) * static_cast<double>(dtype_bytes(c.dtype)) + 4);
  const size_t copy_bytes = static_cast<size_t>(bytes / 2);
  DeviceMemory src(copy_bytes), dst(copy_bytes);
  DeviceWeightedSum sum(c.n);
  sum.set_inputs(pointers, c.dtype, weights, stream.get());
  stream.synchronize();
  // Each sample: `launches` back-to-back launches timed on the host around one synchronize, so
  // launch latency does not count (the aggregator also queues chunks back to back).
  const int launches = 20;
  std::vector<double> t_sum, t_copy;
  for (int r = 0; r < repeats + 1; ++r) {
    auto a = Clock::now();
    for (int k = 0; k < launches; ++k)
      sum.run(0, static_cast<float *>(out.get()), c.elements, stream.get());
    stream.synchronize();
    auto b = Clock::now();
    for (int k = 0; k < launches; ++k)
      stream.copy_on_device(dst.get(), src.get(), copy_bytes);
    stream.synchronize();
    auto d = Clock::now();
    if (r > 0) {
      t_sum.push_back(seconds(a, b) / launches);
      t_copy.push_back(seconds(b, d) / launches);
    }
  }
  std::vector<float> host(static_cast<size_t>(c.elements), NAN);
  stream.copy_to_host(host.data(), out.get(), host.size() * 4);
  stream.synchronize();
  const double error = check(host.data(), c.n, c.elements, weights);
  return result_json(c, bytes, t_sum, t_copy, error, 0.90);
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"bench/aggregate: weighted-sum bandwidth against a copy of the same bytes"};
  std::string device = "both", json_path;
  std::vector<int> ns = {2, 4, 8};
  std::vector<std::string> dtype_names = {"fp32", "bf16"};
  int64_t elements = int64_t{1} << 26;
  int repeats = 5, threads = 0;
  app.add_option("--device", device, "cpu, cuda or both")
      ->check(CLI::IsMember({"cpu", "cuda", "both"}));
  app.add_option("--elements", elements, "elements per buffer (default 64M)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 32));
  app.add_option("--inputs", ns, "comma-separated numbers of inputs")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  app.add_option("--dtypes", dtype_names, "comma-separated input dtypes: fp32, bf16, fp16")
      ->delimiter(',');
  app.add_option("--repeats", repeats, "timed samples per case (median reported)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--threads", threads, "CPU threads (0 = all usable cores)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--json", json_path, "also write the JSON here");
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<DType> dtypes;
    for (const auto &s : dtype_names)
      dtypes.push_back(parse_dtype(s));
    std::string why;
    const bool have_gpu = cuda_devices(&why) > 0;
    if (device == "cuda" && !have_gpu) {
      std::cerr << "bench_aggregate: --device cuda but no GPU: " << why << "\n";
      return 2;
    }
    const int cpu_threads = threads > 0 ? threads : usable_cores();
    nlohmann::json report = {{"benchmark", "aggregate"},
                             {"cpu_threads", cpu_threads},
                             {"cpu", cpu_model_name()},
                             {"cuda", have_gpu ? "available" : why},
                             {"results", nlohmann::json::array()}};
    bool all_correct = true;
    for (DType dtype : dtypes)
      for (int n : ns) {
        if (device != "cuda") {
          auto r = bench_cpu({"cpu", dtype, n, elements}, repeats, cpu_threads);
          all_correct = all_correct && r["correct"].get<bool>();
          std::cerr << r.dump() << "\n";
          report["results"].push_back(r);
        }
        if (device != "cpu" && have_gpu) {
          auto r = bench_cuda({"cuda", dtype, n, elements}, repeats);
          all_correct = all_correct && r["correct"].get<bool>();
          std::cerr << r.dump() << "\n";
          report["results"].push_back(r);
        }
      }
    report["all_correct"] = all_correct;
    std::cout << report.dump(2) << std::endl;
    if (!json_path.empty())
      std::ofstream(json_path) << report.dump(2) << "\n";
    if (!all_correct) {
      std::cerr << "bench_aggregate: WRONG RESULT (see max_relative_error above)\n";
      return 1;
    }
  } catch (const std::exception &e) {
    std::cerr << "bench_aggregate: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
