#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/aggregate/weighted_sum_kernel.h"

#include "hetrain/common/error.h"
#include "hetrain/common/system_info.h"

#include <fmt/format.h>

#include <algorithm>
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

template <typename T>
void weighted_sum_block(const std::vector<const void *> &inputs, const std::vector<float> &weights,
                        float *out, int64_t begin, int64_t end) {
  using S = typename T::Storage;
  // Tiles of the output stay in L1 while every input adds into them: one pass over each input,
  // one write of the output. The inner loops vectorise (fp32 and bf16 widen without branches).
  constexpr int64_t kTile = 2048;
  for (int64_t t = begin; t < end; t += kTile) {
    const int64_t stop = std::min(end, t + kTile);
    const float w0 = weights[0];
    const S *x0 = static_cast<const S *>(inputs[0]);
    for (int64_t j = t; j < stop; ++j)
      out[j] = w0 * T::to_float(x0[j]);
    for (size_t i = 1; i < inputs.size(); ++i) {
      const float w = weights[i];
      const S *x = static_cast<const S *>(inputs[i]);
      for (int64_t j = t; j < stop; ++j)
        out[j] += w * T::to_float(x[j]);
    }
  }
}

template <typename T>
void weighted_sum_typed(const std::vector<const void *> &inputs, const std::vector<float> &weights,
                        float *out, int64_t length, int threads) {
  int n = threads > 0 ? threads : usable_cores();
  // Below ~1 MiB of output a thread costs more to start than it saves.
  n = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, length / (1 << 18))));
  if (n == 1) {
    weighted_sum_block<T>(inputs, weights, out, 0, length);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (length + n - 1) / n;
  for (int k = 0; k < n; ++k) {
    const int64_t begin = k * per, end = std::min(length, begin + per);
    if (begin < end)
      pool.emplace_back(weighted_sum_block<T>, std::cref(inputs), std::cref(weights), out, begin,
                        end);
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
  switch (dtype) {
  case DType::kFloat32:
    return weighted_sum_typed<kernel::Fp32>(inputs, weights, out, length, threads);
  case DType::kBFloat16:
    return weighted_sum_typed<kernel::Bf16>(inputs, weights, out, length, threads);
  case DType::kFloat16:
    return weighted_sum_typed<kernel::Fp16>(inputs, weights, out, length, threads);
  }
}

void weighted_sum_cpu(const std::vector<const float *> &inputs, const std::vector<float> &weights,
                      float *out, int64_t length, int threads) {
  weighted_sum_cpu(std::vector<const void *>(inputs.begin(), inputs.end()), DType::kFloat32,
                   weights, out, length, threads);
}

} // namespace hetrain
