#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/aggregate/weighted_sum_kernel.h"

#include "hetrain/common/error.h"
#include "hetrain/common/system_info.h"

#include <fmt/format.h>

#if defined(__SSE2__) || defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace hetrain {

size_t dtype_bytes(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

const char *dtype_name(DType dtype) {
  switch (dtype) {
  case DType::kBFloat16:
    return "bf16";
  case DType::kFloat16:
    return "fp16";
  default:
    return "fp32";
  }
}

DType parse_dtype(const std::string &name) {
  for (DType d : {DType::kFloat32, DType::kBFloat16, DType::kFloat16})
    if (name == dtype_name(d))
      return d;
  throw UserError(fmt::format("unknown dtype '{}' (expected fp32, bf16 or fp16)", name));
}

namespace {

// Writes `count` floats to `out`, bypassing the caches where the CPU can (x86 non-temporal
// stores): the output is not read again here, and a normal store first reads every line it writes
// (read-for-ownership), a third more memory traffic for a two-input sum.
void stream_out(float *out, const float *from, int64_t count) {
#if defined(__SSE2__)
  int64_t j = 0;
  for (; j < count && reinterpret_cast<uintptr_t>(out + j) % 16 != 0; ++j)
    out[j] = from[j];
  for (; j + 4 <= count; j += 4)
    _mm_stream_ps(out + j, _mm_loadu_ps(from + j));
  for (; j < count; ++j)
    out[j] = from[j];
#else
  std::memcpy(out, from, static_cast<size_t>(count) * sizeof(float));
#endif
}

template <typename T>
[[gnu::always_inline]] inline void weighted_sum_block(const std::vector<const void *> &inputs,
                                                      const std::vector<float> &weights, float *out,
                                                      int64_t begin, int64_t end) {
  using S = typename T::Storage;
  // Tiles are summed in an L1-resident buffer while every input adds into it: one pass over each
  // input, one (streaming) write of the output. The inner loops vectorise (fp32 and bf16 widen
  // without branches).
  constexpr int64_t kTile = 4096;
  alignas(64) float acc[kTile];
  const size_t n = inputs.size();
  for (int64_t t = begin; t < end; t += kTile) {
    const int64_t count = std::min(end - t, kTile);
    // Inputs four at a time: one load and store of the running sum per four inputs, and four
    // input streams in flight for the prefetchers. The additions stay in input order.
    for (size_t i = 0; i < n;) {
      if (n - i >= 4) {
        const S *a = static_cast<const S *>(inputs[i]) + t;
        const S *b = static_cast<const S *>(inputs[i + 1]) + t;
        const S *c = static_cast<const S *>(inputs[i + 2]) + t;
        const S *d = static_cast<const S *>(inputs[i + 3]) + t;
        const float wa = weights[i], wb = weights[i + 1], wc = weights[i + 2], wd = weights[i + 3];
        if (i == 0)
          for (int64_t j = 0; j < count; ++j)
            acc[j] = wa * T::to_float(a[j]) + wb * T::to_float(b[j]) + wc * T::to_float(c[j]) +
                     wd * T::to_float(d[j]);
        else
          for (int64_t j = 0; j < count; ++j)
            acc[j] = acc[j] + wa * T::to_float(a[j]) + wb * T::to_float(b[j]) +
                     wc * T::to_float(c[j]) + wd * T::to_float(d[j]);
        i += 4;
      } else {
        const S *x = static_cast<const S *>(inputs[i]) + t;
        const float w = weights[i];
        if (i == 0)
          for (int64_t j = 0; j < count; ++j)
            acc[j] = w * T::to_float(x[j]);
        else
          for (int64_t j = 0; j < count; ++j)
            acc[j] += w * T::to_float(x[j]);
        i += 1;
      }
    }
    stream_out(out + t, acc, count);
  }
#if defined(__SSE2__)
  _mm_sfence(); // streamed stores are weakly ordered: make them visible before the join
#endif
}

// The loops above are bound by how many floats an instruction handles as much as by memory: the
// fp32 and bf16 blocks are built twice, for x86-64-v3 (AVX2, 8 floats an instruction) and for the
// baseline (SSE2), and the loader picks one by the CPU it runs on (GCC function multiversioning).
// Measured on the 2-core EPYC VM: 0.68-0.76 of memcpy's bandwidth with SSE2 only. Not under
// ThreadSanitizer: the loader runs the clones' resolver before TSan's runtime is up, and the
// instrumented resolver crashes every binary at load.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define HETRAIN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HETRAIN_CPU_CLONES
#endif
HETRAIN_CPU_CLONES void block_fp32(const std::vector<const void *> &inputs,
                                   const std::vector<float> &weights, float *out, int64_t begin,
                                   int64_t end) {
  weighted_sum_block<kernel::Fp32>(inputs, weights, out, begin, end);
}
HETRAIN_CPU_CLONES void block_bf16(const std::vector<const void *> &inputs,
                                   const std::vector<float> &weights, float *out, int64_t begin,
                                   int64_t end) {
  weighted_sum_block<kernel::Bf16>(inputs, weights, out, begin, end);
}
void block_fp16(const std::vector<const void *> &inputs, const std::vector<float> &weights,
                float *out, int64_t begin, int64_t end) {
  weighted_sum_block<kernel::Fp16>(inputs, weights, out, begin, end);
}

#if defined(__x86_64__)
// fp16 with the F16C instructions (8 halves widened per instruction), chosen at run time: the
// portable conversion branches on every element and runs at a tenth of the memory's speed.
__attribute__((target("avx2,f16c"))) void widen_fp16_f16c(const uint16_t *in, float *out,
                                                          int64_t count) {
  int64_t j = 0;
  for (; j + 8 <= count; j += 8)
    _mm256_storeu_ps(out + j,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(in + j))));
  for (; j < count; ++j)
    out[j] = kernel::fp16_to_float(in[j]);
}

__attribute__((target("avx2,f16c"))) void
weighted_sum_block_f16c(const std::vector<const void *> &inputs, const std::vector<float> &weights,
                        float *out, int64_t begin, int64_t end) {
  // As weighted_sum_block, four inputs a pass; each input's tile is widened first (L1-resident).
  constexpr int64_t kTile = 1024;
  alignas(64) float acc[kTile], x[4][kTile];
  const size_t n = inputs.size();
  auto input = [&](size_t i) { return static_cast<const uint16_t *>(inputs[i]); };
  for (int64_t t = begin; t < end; t += kTile) {
    const int64_t count = std::min(end - t, kTile);
    for (size_t i = 0; i < n;) {
      const size_t group = n - i >= 4 ? 4 : 1;
      for (size_t u = 0; u < group; ++u)
        widen_fp16_f16c(input(i + u) + t, x[u], count);
      if (group == 4) {
        const float wa = weights[i], wb = weights[i + 1], wc = weights[i + 2], wd = weights[i + 3];
        if (i == 0)
          for (int64_t j = 0; j < count; ++j)
            acc[j] = wa * x[0][j] + wb * x[1][j] + wc * x[2][j] + wd * x[3][j];
        else
          for (int64_t j = 0; j < count; ++j)
            acc[j] = acc[j] + wa * x[0][j] + wb * x[1][j] + wc * x[2][j] + wd * x[3][j];
      } else {
        const float w = weights[i];
        if (i == 0)
          for (int64_t j = 0; j < count; ++j)
            acc[j] = w * x[0][j];
        else
          for (int64_t j = 0; j < count; ++j)
            acc[j] += w * x[0][j];
      }
      i += group;
    }
    stream_out(out + t, acc, count);
  }
  _mm_sfence();
}
#endif

using BlockFunction = void (*)(const std::vector<const void *> &, const std::vector<float> &,
                               float *, int64_t, int64_t);

void weighted_sum_threads(BlockFunction block, const std::vector<const void *> &inputs,
                          const std::vector<float> &weights, float *out, int64_t length,
                          int threads) {
  int n = threads > 0 ? threads : usable_cores();
  // Below ~1 MiB of output a thread costs more to start than it saves.
  n = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, length / (1 << 18))));
  if (n == 1) {
    block(inputs, weights, out, 0, length);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (length + n - 1) / n;
  for (int k = 0; k < n; ++k) {
    const int64_t begin = k * per, end = std::min(length, begin + per);
    if (begin < end)
      pool.emplace_back(block, std::cref(inputs), std::cref(weights), out, begin, end);
  }
  for (auto &t : pool)
    t.join();
}

} // namespace

void weighted_sum_cpu(const std::vector<const void *> &inputs, DType dtype,
                      const std::vector<float> &weights, float *out, int64_t length, int threads) {
  if (inputs.empty() || inputs.size() != weights.size())
    throw std::invalid_argument("weighted_sum_cpu: need as many weights as inputs, at least one");
  if (length <= 0)
    return;
  BlockFunction block = block_fp32;
  if (dtype == DType::kBFloat16)
    block = block_bf16;
  if (dtype == DType::kFloat16) {
    block = block_fp16;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2"))
      block = weighted_sum_block_f16c;
#endif
  }
  weighted_sum_threads(block, inputs, weights, out, length, threads);
}

void weighted_sum_cpu(const std::vector<const float *> &inputs, const std::vector<float> &weights,
                      float *out, int64_t length, int threads) {
  weighted_sum_cpu(std::vector<const void *>(inputs.begin(), inputs.end()), DType::kFloat32,
                   weights, out, length, threads);
}

} // namespace hetrain
