// A trainer's GPU as NVML sees it: utilisation, memory used, temperature and power, for the
// metrics file and the Prometheus textfile. NVML is loaded at run time (dlopen of
// libnvidia-ml.so.1), so a machine without the NVIDIA driver runs the same binary and reports
// nothing.
#pragma once

#include <string>

namespace hetrain {

struct GpuSample {
  bool valid = false;
  double utilization = 0; // 0..1 over NVML's last sample period
  double memory_used = 0; // bytes
  double temperature = 0; // degrees Celsius
  double power = 0;       // watts
};

// Samples GPU `index` (CUDA's numbering, as NVML's when CUDA_VISIBLE_DEVICES is unset). Invalid
// when NVML or the device is missing; `why` then says which (once is enough to log).
GpuSample sample_gpu(int index, std::string *why = nullptr);

} // namespace hetrain
