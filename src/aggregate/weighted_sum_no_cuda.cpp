// Builds without CUDA: the device classes exist so callers need no #ifdef, and refuse to be made.
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/common/error.h"

namespace hetrain {
namespace {
[[noreturn]] void no_cuda() {
  throw UserError("this hetrain was built without CUDA (no nvcc at configure time); rebuild with "
                  "-DHETRAIN_CUDA=ON on a machine with the CUDA toolkit");
}
} // namespace

int cuda_devices(std::string *why) {
  if (why)
    *why = "built without CUDA";
  return 0;
}
void use_cuda_device(int) { no_cuda(); }
void synchronize_cuda_device() { no_cuda(); }

DeviceWeightedSum::DeviceWeightedSum(int) { no_cuda(); }
DeviceWeightedSum::~DeviceWeightedSum() = default;
void DeviceWeightedSum::set_inputs(const std::vector<const void *> &, DType,
                                   const std::vector<float> &, void *) {
  no_cuda();
}
void DeviceWeightedSum::run(int64_t, float *, int64_t, void *) { no_cuda(); }

DeviceMemory::DeviceMemory(size_t) { no_cuda(); }
DeviceMemory::~DeviceMemory() = default;
PinnedMemory::PinnedMemory(size_t) { no_cuda(); }
PinnedMemory::~PinnedMemory() = default;

CudaStream::CudaStream() { no_cuda(); }
CudaStream::~CudaStream() = default;
void CudaStream::copy_to_device(void *, const void *, size_t) { no_cuda(); }
void CudaStream::copy_to_host(void *, const void *, size_t) { no_cuda(); }
void CudaStream::copy_on_device(void *, const void *, size_t) { no_cuda(); }
void CudaStream::synchronize() { no_cuda(); }

} // namespace hetrain
