#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/common/system_info.h"

#include <fmt/format.h>

#include <stdexcept>

namespace hetrain {

// The CUDA path's buffers: per slot a receive buffer (pinned host, or device when MPI is
// CUDA-aware) and, when pinned, a device mirror the chunks are copied into.
struct ChunkReducer::Cuda {
  int device = 0;
  std::vector<std::unique_ptr<PinnedMemory>> pinned;
  std::vector<std::unique_ptr<DeviceMemory>> on_device;
  std::unique_ptr<CudaStream> stream;
  std::unique_ptr<DeviceWeightedSum> sum;
};

ChunkReducer::ChunkReducer(ReduceDevice where, size_t slots, int64_t numel, DType dtype,
                           int threads, int cuda_device)
    : where_(where), numel_(numel), dtype_(dtype), threads_(threads) {
  if (slots == 0)
    throw std::invalid_argument("ChunkReducer: no slots");
  const size_t bytes = static_cast<size_t>(numel) * dtype_bytes(dtype);
  if (where == ReduceDevice::kCpu) {
    host_.assign(slots, std::vector<uint8_t>(bytes));
    return;
  }
  cuda_ = std::make_unique<Cuda>();
  cuda_->device = cuda_device;
  use_cuda_device(cuda_device);
  receives_on_device_ = mpi_is_cuda_aware();
  for (size_t s = 0; s < slots; ++s) {
    cuda_->on_device.push_back(std::make_unique<DeviceMemory>(bytes));
    if (!receives_on_device_)
      cuda_->pinned.push_back(std::make_unique<PinnedMemory>(bytes));
  }
  cuda_->stream = std::make_unique<CudaStream>();
  cuda_->sum = std::make_unique<DeviceWeightedSum>(static_cast<int>(slots));
}

ChunkReducer::~ChunkReducer() = default;

void *ChunkReducer::receive_buffer(size_t slot) {
  if (where_ == ReduceDevice::kCpu)
    return host_.at(slot).data();
  return receives_on_device_ ? cuda_->on_device.at(slot)->get() : cuda_->pinned.at(slot)->get();
}

void ChunkReducer::begin_round(const std::vector<size_t> &slots,
                               const std::vector<float> &weights) {
  if (slots.empty() || slots.size() != weights.size())
    throw std::invalid_argument("ChunkReducer::begin_round: one weight per slot, at least one");
  slots_ = slots;
  weights_ = weights;
  if (where_ == ReduceDevice::kCuda) {
    // LibTorch's work on the master buffers (last round's optimizer step) runs on its own
    // stream; the kernel about to overwrite them must come after it.
    synchronize_cuda_device();
    std::vector<const void *> inputs;
    for (size_t s : slots)
      inputs.push_back(cuda_->on_device.at(s)->get());
    cuda_->sum->set_inputs(inputs, dtype_, weights, cuda_->stream->get());
  }
}

void ChunkReducer::reduce_chunk(int64_t begin, int64_t length, float *target) {
  if (slots_.empty())
    throw std::logic_error("ChunkReducer::reduce_chunk before begin_round");
  if (begin < 0 || length < 0 || begin + length > numel_)
    throw std::out_of_range("ChunkReducer::reduce_chunk: chunk outside the buffer");
  const size_t elem = dtype_bytes(dtype_);
  const size_t at = static_cast<size_t>(begin) * elem, bytes = static_cast<size_t>(length) * elem;
  if (where_ == ReduceDevice::kCpu) {
    std::vector<const void *> inputs;
    for (size_t s : slots_)
      inputs.push_back(host_[s].data() + at);
    weighted_sum_cpu(inputs, dtype_, weights_, target + begin, length, threads_);
    return;
  }
  if (!receives_on_device_)
    for (size_t s : slots_)
      cuda_->stream->copy_to_device(static_cast<uint8_t *>(cuda_->on_device[s]->get()) + at,
                                    static_cast<const uint8_t *>(cuda_->pinned[s]->get()) + at,
                                    bytes);
  cuda_->sum->run(begin, target + begin, length, cuda_->stream->get());
}

void ChunkReducer::finish() {
  if (where_ == ReduceDevice::kCuda)
    cuda_->stream->synchronize();
}

int ChunkReducer::cuda_device() const { return cuda_ ? cuda_->device : -1; }

std::string ChunkReducer::description() const {
  if (where_ == ReduceDevice::kCpu)
    return fmt::format("cpu ({} threads)", threads_ > 0 ? threads_ : usable_cores());
  return fmt::format("cuda device {} ({})", cuda_->device,
                     receives_on_device_ ? "CUDA-aware MPI receives into device memory"
                                         : "pinned host buffers, copied in chunk by chunk");
}

} // namespace hetrain
