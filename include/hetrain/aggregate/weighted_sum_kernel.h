// The body of the CUDA weighted-sum kernel, written once for the device and the host.
//
// nvcc compiles it into the kernel (weighted_sum_cuda.cu); the host compiler compiles the same
// code so that unit tests on machines without a GPU can run every "thread" of a simulated grid and
// check the indexing: the scalar head, the 16-byte vectors, the scalar tail, and the grid-stride
// loops, for any length, alignment and grid size. Only the number conversions differ (hardware
// instructions on the device, bit manipulation on the host).
//
// Work split: the output [0, length) is cut into
//   head   [0, h)                      scalar, until every pointer is 16-byte aligned
//   body   [h, h + vectors * E)        one 16-byte load per input per vector (E = 16 / sizeof(in))
//   tail   [h + vectors * E, length)   scalar
// h is the same for all pointers or the whole range is scalar (see plan_vectors).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define HETRAIN_HD __host__ __device__ __forceinline__
#else
#define HETRAIN_HD inline
#endif

namespace hetrain::kernel {

constexpr int kVectorBytes = 16;

#if defined(__CUDACC__)
using Vec16 = uint4;   // one 128-bit load (ld.global.v4)
using Float4 = float4; // one 128-bit store
#else
struct alignas(16) Vec16 {
  uint32_t x, y, z, w;
};
struct alignas(16) Float4 {
  float x, y, z, w;
};
#endif

HETRAIN_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// bfloat16 is the top half of a float32: widening is exact.
HETRAIN_HD float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

// IEEE binary16 -> binary32, exact (every half is a float), NaN and Inf kept.
HETRAIN_HD float fp16_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) // Inf or NaN (the payload moves up)
    return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) { // zero or subnormal: mantissa * 2^-24
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#endif
}

// Element types: storage, elements per 16-byte vector, conversion to float.
struct Fp32 {
  using Storage = float;
  static constexpr int kPerVector = 4;
  HETRAIN_HD static float to_float(float v) { return v; }
  HETRAIN_HD static void unpack(const Vec16 &r, float *v) {
    v[0] = bits_to_float(r.x);
    v[1] = bits_to_float(r.y);
    v[2] = bits_to_float(r.z);
    v[3] = bits_to_float(r.w);
  }
};
// The two 16-bit formats differ only in their conversion (a struct, so that nvcc sees a plain
// call rather than a function pointer in device code).
struct Bf16Convert {
  HETRAIN_HD static float apply(uint16_t v) { return bf16_to_float(v); }
};
struct Fp16Convert {
  HETRAIN_HD static float apply(uint16_t v) { return fp16_to_float(v); }
};
template <typename Convert> struct Half16 {
  using Storage = uint16_t;
  static constexpr int kPerVector = 8;
  HETRAIN_HD static float to_float(uint16_t v) { return Convert::apply(v); }
  // Little-endian: element 2k is the low half of word k.
  HETRAIN_HD static void unpack(const Vec16 &r, float *v) {
    const uint32_t words[4] = {r.x, r.y, r.z, r.w};
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = Convert::apply(static_cast<uint16_t>(words[k] & 0xffffu));
      v[2 * k + 1] = Convert::apply(static_cast<uint16_t>(words[k] >> 16));
    }
  }
};
using Bf16 = Half16<Bf16Convert>;
using Fp16 = Half16<Fp16Convert>;

struct VectorPlan {
  int64_t head = 0;    // scalar elements before the first vector
  int64_t vectors = 0; // 16-byte input vectors in the body; 0 = all scalar
};

// Host side: finds h such that every input (at element offset + h) and the output (at h) are
// 16-byte aligned. Pointers only need their natural alignment; when they disagree modulo 16
// bytes no such h exists and the whole range is done with scalar loads (still correct).
inline VectorPlan plan_vectors(const void *const *inputs, int n, int elem_bytes, int64_t offset,
                               const float *out, int64_t length) {
  const int per_vector = kVectorBytes / elem_bytes;
  for (int64_t h = 0; h < per_vector && h < length; ++h) {
    bool aligned = (reinterpret_cast<uintptr_t>(out + h) % kVectorBytes) == 0;
    for (int i = 0; aligned && i < n; ++i) {
      const uintptr_t at = reinterpret_cast<uintptr_t>(inputs[i]) +
                           static_cast<uintptr_t>((offset + h) * elem_bytes);
      aligned = at % kVectorBytes == 0;
    }
    if (aligned)
      return {h, (length - h) / per_vector};
  }
  return {0, 0};
}

// One scalar output element.
template <typename T>
HETRAIN_HD void weighted_sum_element(const void *const *inputs, const float *weights, int n,
                                     int64_t offset, float *out, int64_t j) {
  using S = typename T::Storage;
  float acc = 0.0f;
  for (int i = 0; i < n; ++i)
    acc += weights[i] * T::to_float(static_cast<const S *>(inputs[i])[offset + j]);
  out[j] = acc;
}

// What thread `thread` of `threads` does: grid-stride over the scalar elements, then over the
// vectors. Inputs are taken four at a time so that four 16-byte loads are in flight per thread
// before their sums are needed (the kernel is bound by memory latency and bandwidth, not math).
template <typename T>
HETRAIN_HD void weighted_sum_thread(const void *const *inputs, const float *weights, int n,
                                    int64_t offset, float *out, int64_t length,
                                    const VectorPlan &plan, int64_t thread, int64_t threads) {
  using S = typename T::Storage;
  constexpr int E = T::kPerVector;
  const int64_t body_begin = plan.head, body_end = plan.head + plan.vectors * E;
  const int64_t scalars = length - plan.vectors * E;
  for (int64_t k = thread; k < scalars; k += threads) {
    const int64_t j = k < body_begin ? k : body_end + (k - body_begin);
    weighted_sum_element<T>(inputs, weights, n, offset, out, j);
  }
  for (int64_t v = thread; v < plan.vectors; v += threads) {
    const int64_t first = body_begin + v * E; // first output element of this vector
    float acc[E];
    for (int e = 0; e < E; ++e)
      acc[e] = 0.0f;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
      Vec16 raw[4];
      for (int u = 0; u < 4; ++u)
        raw[u] = *reinterpret_cast<const Vec16 *>(static_cast<const S *>(inputs[i + u]) + offset +
                                                  first);
      for (int u = 0; u < 4; ++u) {
        float x[E];
        T::unpack(raw[u], x);
        const float w = weights[i + u];
        for (int e = 0; e < E; ++e)
          acc[e] += w * x[e];
      }
    }
    for (; i < n; ++i) {
      const Vec16 raw =
          *reinterpret_cast<const Vec16 *>(static_cast<const S *>(inputs[i]) + offset + first);
      float x[E];
      T::unpack(raw, x);
      const float w = weights[i];
      for (int e = 0; e < E; ++e)
        acc[e] += w * x[e];
    }
    Float4 *dst = reinterpret_cast<Float4 *>(out + first);
    for (int q = 0; q < E / 4; ++q)
      dst[q] = Float4{acc[4 * q], acc[4 * q + 1], acc[4 * q + 2], acc[4 * q + 3]};
  }
}

} // namespace hetrain::kernel
