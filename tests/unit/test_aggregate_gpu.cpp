// The CUDA weighted-sum kernel and the CUDA reducer on a real device (label `gpu`). Every case
// gets fresh random inputs, a poisoned output, and a float64 reference (weighted_sum_cases.h).
// Without a visible GPU each test is skipped with the reason, and ctest reports it as skipped.
#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/weighted_sum_cuda.h"

#include "weighted_sum_cases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace {
using namespace hetrain;
using namespace hetrain::testing;

#define REQUIRE_GPU()                                                                              \
  do {                                                                                             \
    std::string why;                                                                               \
    if (cuda_devices(&why) == 0)                                                                   \
      GTEST_SKIP() << "no CUDA device: " << why;                                                   \
  } while (0)

// Copies host bytes to the same offset from a 256-byte-aligned device allocation, so a host
// buffer's misalignment is kept on the device.
struct DeviceCopy {
  std::unique_ptr<DeviceMemory> memory;
  uint8_t *data = nullptr;
  DeviceCopy(const uint8_t *host, size_t bytes, size_t shift_bytes, CudaStream &stream) {
    memory = std::make_unique<DeviceMemory>(bytes + shift_bytes + 64);
    data = static_cast<uint8_t *>(memory->get()) + shift_bytes;
    if (host)
      stream.copy_to_device(data, host, bytes);
  }
};

TEST(WeightedSumCuda, MatchesFloat64ReferenceForEveryCase) {
  REQUIRE_GPU();
  std::mt19937 rng(90);
  CudaStream stream;
  DeviceWeightedSum sum(64);
  for (const SumCase &c : standard_sum_cases()) {
    const SumData d = make_sum_data(c, rng);
    const size_t elem = dtype_bytes(c.dtype);
    std::vector<DeviceCopy> inputs;
    std::vector<const void *> pointers;
    for (const ShiftedBuffer &b : d.inputs) {
      inputs.emplace_back(b.data, b.bytes, static_cast<size_t>(b.shift) * elem, stream);
      pointers.push_back(inputs.back().data);
    }
    const size_t out_bytes = static_cast<size_t>(c.length + 4) * sizeof(float);
    std::vector<float> host_out(static_cast<size_t>(c.length) + 4, NAN); // poison
    DeviceCopy out(reinterpret_cast<const uint8_t *>(host_out.data()), out_bytes,
                   static_cast<size_t>(d.out_shift) * sizeof(float), stream);
    sum.set_inputs(pointers, c.dtype, d.weights, stream.get());
    sum.run(0, reinterpret_cast<float *>(out.data), c.length, stream.get());
    stream.copy_to_host(host_out.data(), out.data, out_bytes);
    stream.synchronize();
    EXPECT_LE(max_relative_error(c, d, host_out.data()), kSumTolerance) << c.name();
    EXPECT_TRUE(std::isnan(host_out[static_cast<size_t>(c.length)])) << c.name() << " wrote past";
  }
}

TEST(WeightedSumCuda, NanAndInfPropagate) {
  REQUIRE_GPU();
  CudaStream stream;
  const int64_t length = 40;
  std::vector<float> a(length, 1.0f), b(length, 1.0f), out(length, 0.0f);
  b[5] = NAN;
  b[37] = NAN;
  b[6] = INFINITY;
  b[38] = -INFINITY;
  DeviceCopy da(reinterpret_cast<uint8_t *>(a.data()), length * 4, 0, stream);
  DeviceCopy db(reinterpret_cast<uint8_t *>(b.data()), length * 4, 0, stream);
  DeviceCopy dout(nullptr, length * 4, 0, stream);
  DeviceWeightedSum sum(2);
  sum.set_inputs({da.data, db.data}, DType::kFloat32, {0.5f, 0.5f}, stream.get());
  sum.run(0, reinterpret_cast<float *>(dout.data), length, stream.get());
  stream.copy_to_host(out.data(), dout.data, length * 4);
  stream.synchronize();
  EXPECT_TRUE(std::isnan(out[5]) && std::isnan(out[37]));
  EXPECT_TRUE(std::isinf(out[6]) && std::isinf(out[38]));
  EXPECT_FLOAT_EQ(out[0], 1.0f);
}

TEST(WeightedSumCuda, OffsetsSelectTheChunk) {
  REQUIRE_GPU();
  CudaStream stream;
  const int64_t length = 1000, offset = 333, count = 501;
  std::vector<float> a(length), out(length, NAN);
  for (int64_t j = 0; j < length; ++j)
    a[j] = static_cast<float>(j);
  DeviceCopy da(reinterpret_cast<uint8_t *>(a.data()), length * 4, 0, stream);
  DeviceCopy dout(reinterpret_cast<uint8_t *>(out.data()), length * 4, 0, stream);
  DeviceWeightedSum sum(1);
  sum.set_inputs({da.data}, DType::kFloat32, {2.0f}, stream.get());
  sum.run(offset, reinterpret_cast<float *>(dout.data) + offset, count, stream.get());
  stream.copy_to_host(out.data(), dout.data, length * 4);
  stream.synchronize();
  for (int64_t j = 0; j < length; ++j) {
    if (j >= offset && j < offset + count)
      ASSERT_EQ(out[j], 2.0f * static_cast<float>(j)) << j;
    else
      ASSERT_TRUE(std::isnan(out[j])) << j;
  }
}

TEST(ChunkReducerCuda, MatchesTheCpuReducer) {
  REQUIRE_GPU();
  const int64_t numel = (1 << 20) + 77, chunk = 65536;
  std::mt19937 rng(5);
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    SumCase c{numel, 4, dtype, SumCase::kAligned};
    const SumData d = make_sum_data(c, rng);
    ChunkReducer gpu(ReduceDevice::kCuda, 4, numel, dtype);
    ChunkReducer cpu(ReduceDevice::kCpu, 4, numel, dtype);
    for (size_t s = 0; s < 4; ++s) {
      std::memcpy(cpu.receive_buffer(s), d.inputs[s].data, d.inputs[s].bytes);
      if (gpu.receives_on_device()) {
        CudaStream stream;
        stream.copy_to_device(gpu.receive_buffer(s), d.inputs[s].data, d.inputs[s].bytes);
        stream.synchronize();
      } else {
        std::memcpy(gpu.receive_buffer(s), d.inputs[s].data, d.inputs[s].bytes);
      }
    }
    const std::vector<size_t> slots = {3, 0, 2}; // slot 1 skipped this round
    const std::vector<float> weights = {d.weights[3], d.weights[0], d.weights[2]};
    gpu.begin_round(slots, weights);
    cpu.begin_round(slots, weights);
    CudaStream stream;
    DeviceMemory target(static_cast<size_t>(numel) * 4);
    std::vector<float> want(numel), got(numel, NAN);
    for (int64_t begin = 0; begin < numel; begin += chunk) {
      const int64_t length = std::min(chunk, numel - begin);
      gpu.reduce_chunk(begin, length, static_cast<float *>(target.get()));
      cpu.reduce_chunk(begin, length, want.data());
    }
    gpu.finish();
    stream.copy_to_host(got.data(), target.get(), static_cast<size_t>(numel) * 4);
    stream.synchronize();
    // Both are within fp32 rounding of the exact sum, so of each other: compare relative to the
    // size of what was summed (cancellation makes |want| itself a poor scale).
    double worst = 0;
    for (int64_t j = 0; j < numel; ++j) {
      ASSERT_TRUE(std::isfinite(got[j])) << dtype_name(dtype) << " j " << j;
      double scale = 0;
      for (size_t k = 0; k < slots.size(); ++k)
        scale += std::abs(double(weights[k]) * widen(dtype, d.inputs[slots[k]].data, j));
      worst = std::max(worst, std::abs(double(got[j]) - want[j]) / std::max(scale, 1e-30));
    }
    EXPECT_LE(worst, 2 * kSumTolerance) << dtype_name(dtype) << " via " << gpu.description();
  }
}

} // namespace
