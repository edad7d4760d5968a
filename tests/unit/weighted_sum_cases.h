// Test cases of the weighted sum shared by the host tests (CPU path, and the kernel body run on a
// simulated grid) and the `gpu` tests (the real kernel): fresh random inputs of any dtype at any
// element misalignment, a poisoned output, and a float64 reference.
#pragma once

#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/aggregate/weighted_sum_kernel.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace hetrain::testing {

// A buffer whose data starts `shift` elements past a 16-byte boundary.
struct ShiftedBuffer {
  std::unique_ptr<uint8_t[]> storage;
  uint8_t *data = nullptr;
  size_t bytes = 0; // of the elements, from data
  int shift = 0;
  ShiftedBuffer(size_t bytes_, int shift_, size_t elem) : bytes(bytes_), shift(shift_) {
    storage.reset(new uint8_t[bytes + 32 + static_cast<size_t>(shift) * elem]);
    const uintptr_t base = reinterpret_cast<uintptr_t>(storage.get());
    data = storage.get() + ((16 - base % 16) % 16) + static_cast<size_t>(shift) * elem;
  }
};

struct SumCase {
  int64_t length = 1;
  int n = 1;
  DType dtype = DType::kFloat32;
  // Where the pointers start relative to 16 bytes: all aligned; all one element past (a scalar
  // head, then vectors); or each at its own offset (no common alignment: all scalar).
  enum Alignment { kAligned, kSameShift, kMixedShifts } alignment = kAligned;
  std::string name() const {
    static const char *names[] = {"aligned", "shifted by one element", "mixed shifts"};
    return std::string(dtype_name(dtype)) + " n=" + std::to_string(n) +
           " length=" + std::to_string(length) + " " + names[alignment];
  }
};

struct SumData {
  std::vector<ShiftedBuffer> inputs;
  std::vector<float> weights;
  int out_shift = 0;
  std::vector<const void *> pointers() const {
    std::vector<const void *> p;
    for (const auto &b : inputs)
      p.push_back(b.data);
    return p;
  }
};

inline float widen(DType dtype, const uint8_t *data, int64_t j) {
  if (dtype == DType::kFloat32) {
    float f;
    std::memcpy(&f, data + 4 * j, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, data + 2 * j, 2);
  return dtype == DType::kBFloat16 ? kernel::bf16_to_float(h) : kernel::fp16_to_float(h);
}

// Finite values between about 2^-7 and 2^7 (either sign) in every dtype, drawn fresh each call.
inline SumData make_sum_data(const SumCase &c, std::mt19937 &rng) {
  SumData d;
  const size_t elem = dtype_bytes(c.dtype);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < c.n; ++i) {
    const int shift = c.alignment == SumCase::kAligned     ? 0
                      : c.alignment == SumCase::kSameShift ? 1
                                                           : (i % 3) + 1;
    d.inputs.emplace_back(static_cast<size_t>(c.length) * elem, shift, elem);
    uint8_t *p = d.inputs.back().data;
    for (int64_t j = 0; j < c.length; ++j) {
      const uint32_t r = bits(rng);
      if (c.dtype == DType::kFloat32) {
        const float f = normal(rng);
        std::memcpy(p + 4 * j, &f, 4);
      } else {
        // sign | exponent in a moderate range | random mantissa
        const uint16_t h = c.dtype == DType::kBFloat16
                               ? static_cast<uint16_t>(
                                     (r & 0x8000u) | ((120u + (r >> 16) % 15u) << 7) | (r & 0x7fu))
                               : static_cast<uint16_t>(
                                     (r & 0x8000u) | ((8u + (r >> 16) % 15u) << 10) | (r & 0x3ffu));
        std::memcpy(p + 2 * j, &h, 2);
      }
    }
    d.weights.push_back(normal(rng));
  }
  d.out_shift = c.alignment == SumCase::kAligned ? 0 : c.alignment == SumCase::kSameShift ? 1 : 2;
  return d;
}

// Largest |out - reference| / sum_i |w_i x_i| over all elements (the error relative to the size
// of what was summed, meaningful under cancellation), or +inf when an element is NaN (poison).
inline double max_relative_error(const SumCase &c, const SumData &d, const float *out) {
  double worst = 0;
  for (int64_t j = 0; j < c.length; ++j) {
    double expected = 0, scale = 0;
    for (int i = 0; i < c.n; ++i) {
      const double term = double(d.weights[static_cast<size_t>(i)]) *
                          double(widen(c.dtype, d.inputs[static_cast<size_t>(i)].data, j));
      expected += term;
      scale += std::abs(term);
    }
    if (!std::isfinite(out[j]))
      return INFINITY;
    worst = std::max(worst, std::abs(double(out[j]) - expected) / std::max(scale, 1e-30));
  }
  return worst;
}

// The cases the issue names: lengths 1, 7, 4096+3, 2^24; n = 1, 2, 3, 8, 64; every dtype;
// aligned, shifted and mixed. 2^24 elements with 64 inputs would be 4 GiB of host reference work
// per dtype, so the longest length runs with up to 8 inputs, one alignment each.
inline std::vector<SumCase> standard_sum_cases() {
  std::vector<SumCase> cases;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16})
    for (int64_t length : {int64_t{1}, int64_t{7}, int64_t{4096 + 3}, int64_t{1} << 24})
      for (int n : {1, 2, 3, 8, 64})
        for (auto alignment : {SumCase::kAligned, SumCase::kSameShift, SumCase::kMixedShifts}) {
          // The long case: aligned for 1 and 8 inputs, shifted for 2, mixed for 3.
          const auto long_alignment = n == 2   ? SumCase::kSameShift
                                      : n == 3 ? SumCase::kMixedShifts
                                               : SumCase::kAligned;
          if (length == (int64_t{1} << 24) && (n > 8 || alignment != long_alignment))
            continue;
          cases.push_back({length, n, dtype, alignment});
        }
  return cases;
}

inline constexpr double kSumTolerance = 1e-6;

} // namespace hetrain::testing
