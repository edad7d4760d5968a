#include "hetrain/aggregate/weighted_sum.h"

#include "hetrain/common/system_info.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace hetrain {
namespace {

void weighted_sum_block(const std::vector<const float *> &inputs, const std::vector<float> &weights,
                        float *out, int64_t begin, int64_t end) {
  // Tiles of the output stay in L1 while every input adds into them: one pass over each input.
  constexpr int64_t kTile = 2048;
  for (int64_t t = begin; t < end; t += kTile) {
    const int64_t stop = std::min(end, t + kTile);
    const float w0 = weights[0];
    const float *x0 = inputs[0];
    for (int64_t j = t; j < stop; ++j)
      out[j] = w0 * x0[j];
    for (size_t i = 1; i < inputs.size(); ++i) {
      const float w = weights[i];
      const float *x = inputs[i];
      for (int64_t j = t; j < stop; ++j)
        out[j] += w * x[j];
    }
  }
}

} // namespace

void weighted_sum_cpu(const std::vector<const float *> &inputs, const std::vector<float> &weights,
                      float *out, int64_t length, int threads) {
  if (inputs.empty() || inputs.size() != weights.size())
    throw std::invalid_argument("weighted_sum_cpu: need as many weights as inputs, at least one");
  if (length <= 0)
    return;
  int n = threads > 0 ? threads : usable_cores();
  // Below ~1 MiB of output a thread costs more to start than it saves.
  n = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, length / (1 << 18))));
  if (n == 1) {
    weighted_sum_block(inputs, weights, out, 0, length);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (length + n - 1) / n;
  for (int k = 0; k < n; ++k) {
    const int64_t begin = k * per, end = std::min(length, begin + per);
    if (begin < end)
      pool.emplace_back(weighted_sum_block, std::cref(inputs), std::cref(weights), out, begin, end);
  }
  for (auto &t : pool)
    t.join();
}

} // namespace hetrain
