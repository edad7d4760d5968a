// GPU facts through the CUDA runtime (CUDA builds only); without CUDA the status says why no GPU
// is listed. NVML is not needed for anything reported here.
#include "hetrain/cluster/node_report.h"

#include <fmt/format.h>

#ifdef HETRAIN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace hetrain {

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

} // namespace hetrain
