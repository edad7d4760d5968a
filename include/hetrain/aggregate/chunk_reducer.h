// Rank 0's reduce of the trainers' uploads, chunk by chunk as they arrive (DESIGN §5 "One round",
// step 4).
//
//   ChunkReducer reducer(ReduceDevice::kCuda, trainers, numel, DType::kBFloat16);
//   irecv into reducer.receive_buffer(slot) ...            (pinned host memory, or device memory
//                                                            when MPI is CUDA-aware)
//   reducer.begin_round(slots, weights);                    who takes part, with which weights
//   reducer.reduce_chunk(begin, length, target);            as soon as chunk's copies all arrived
//   reducer.finish();                                       before anyone reads `target`
//
// On the CPU the chunk is summed at once. On CUDA each slot's chunk is copied to the device on a
// stream and the kernel is queued behind the copies, so the host goes back to receiving while the
// device works; `target` is then device memory (the master gradient or parameters).
#pragma once

#include "hetrain/aggregate/weighted_sum.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hetrain {

enum class ReduceDevice { kCpu, kCuda };

class ChunkReducer {
public:
  // `slots`: one receive buffer per trainer; `numel` elements of `dtype` each. `threads` is for
  // the CPU path (0 = all usable cores); `cuda_device` for the CUDA path.
  ChunkReducer(ReduceDevice where, size_t slots, int64_t numel, DType dtype, int threads = 0,
               int cuda_device = 0);
  ~ChunkReducer();
  ChunkReducer(const ChunkReducer &) = delete;
  ChunkReducer &operator=(const ChunkReducer &) = delete;

  void *receive_buffer(size_t slot);
  // True when receive buffers are device memory (a CUDA-aware MPI receives into them directly).
  bool receives_on_device() const { return receives_on_device_; }
  int cuda_device() const; // the CUDA path's device; -1 on the CPU path
  void begin_round(const std::vector<size_t> &slots, const std::vector<float> &weights);
  void reduce_chunk(int64_t begin, int64_t length, float *target);
  void finish();
  std::string description() const; // "cpu (2 threads)", "cuda device 0 via pinned host buffers"

private:
  struct Cuda;
  ReduceDevice where_;
  int64_t numel_;
  DType dtype_;
  int threads_;
  bool receives_on_device_ = false;
  std::vector<std::vector<uint8_t>> host_; // CPU path
  std::vector<size_t> slots_;
  std::vector<float> weights_;
  std::unique_ptr<Cuda> cuda_;
};

} // namespace hetrain
