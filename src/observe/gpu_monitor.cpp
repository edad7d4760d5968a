#include "hetrain/observe/gpu_monitor.h"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <type_traits>

namespace hetrain {
namespace {

// The few NVML entry points used, with NVML's C types spelled out (no nvml.h needed to build).
using nvmlReturn_t = int;
using nvmlDevice_t = void *;
struct NvmlUtilization {
  unsigned int gpu, memory;
};
struct NvmlMemory {
  unsigned long long total, free, used;
};
constexpr int kNvmlTemperatureGpu = 0;

struct Nvml {
  bool loaded = false;
  std::string why;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned int, nvmlDevice_t *) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, NvmlUtilization *) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, NvmlMemory *) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int *) = nullptr;
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *) = nullptr;
};

const Nvml &nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      n.why = "NVML not found (libnvidia-ml.so.1: no NVIDIA driver)";
      return;
    }
    auto get = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      return fn != nullptr;
    };
    if (!get(n.init, "nvmlInit_v2") || !get(n.handle_by_index, "nvmlDeviceGetHandleByIndex_v2") ||
        !get(n.utilization, "nvmlDeviceGetUtilizationRates") ||
        !get(n.memory, "nvmlDeviceGetMemoryInfo") ||
        !get(n.temperature, "nvmlDeviceGetTemperature") ||
        !get(n.power, "nvmlDeviceGetPowerUsage")) {
      n.why = "NVML lacks an entry point hetrain uses";
      return;
    }
    if (n.init() != 0) {
      n.why = "nvmlInit failed";
      return;
    }
    n.loaded = true;
  });
  return n;
}

} // namespace

GpuSample sample_gpu(int index, std::string *why) {
  GpuSample s;
  const Nvml &n = nvml();
  if (!n.loaded) {
    if (why)
      *why = n.why;
    return s;
  }
  nvmlDevice_t device = nullptr;
  if (index < 0 || n.handle_by_index(static_cast<unsigned int>(index), &device) != 0) {
    if (why)
      *why = "NVML has no device " + std::to_string(index);
    return s;
  }
  NvmlUtilization u{};
  NvmlMemory m{};
  unsigned int celsius = 0, milliwatts = 0;
  if (n.utilization(device, &u) == 0)
    s.utilization = u.gpu / 100.0;
  if (n.memory(device, &m) == 0)
    s.memory_used = static_cast<double>(m.used);
  if (n.temperature(device, kNvmlTemperatureGpu, &celsius) == 0)
    s.temperature = celsius;
  if (n.power(device, &milliwatts) == 0)
    s.power = milliwatts / 1000.0;
  s.valid = true;
  return s;
}

} // namespace hetrain
