#include "hetrain/aggregate/int8_codec.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hetrain {

Int8Layout::Int8Layout(const std::vector<Piece> &pieces) {
  for (const Piece &p : pieces) {
    if (static_cast<int64_t>(offset.size()) <= p.index)
      offset.resize(static_cast<size_t>(p.index) + 1, 0);
    offset[static_cast<size_t>(p.index)] = scales;
    scales += int8_blocks(p);
  }
}

void quantize_int8(const float *x, int64_t n, int8_t *q, float *scales) {
  for (int64_t b = 0; b * kInt8Block < n; ++b) {
    const int64_t begin = b * kInt8Block, end = std::min(n, begin + kInt8Block);
    float absmax = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (!std::isfinite(x[i])) {
        absmax = std::numeric_limits<float>::quiet_NaN();
        break;
      }
      absmax = std::max(absmax, std::fabs(x[i]));
    }
    const float scale = absmax / 127.0f;
    scales[b] = scale;
    for (int64_t i = begin; i < end; ++i)
      q[i] = scale > 0 && std::isfinite(scale)
                 ? static_cast<int8_t>(std::clamp(std::nearbyint(x[i] / scale), -127.0f, 127.0f))
                 : int8_t{0};
  }
}

void dequantize_int8(const int8_t *q, const float *scales, int64_t begin, int64_t n, float *out) {
  const int64_t first = begin / kInt8Block;
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(q[i]) * scales[(begin + i) / kInt8Block - first];
}

// In place: `residual` first becomes what is to be sent (x + the carried error), then what its
// rounding lost, so a round allocates nothing.
double quantize_with_feedback(const float *x, float *residual, int64_t numel, int8_t *q,
                              float *scales) {
  for (int64_t i = 0; i < numel; ++i)
    residual[i] += x[i];
  quantize_int8(residual, numel, q, scales);
  double err = 0, norm = 0;
  for (int64_t i = 0; i < numel; ++i) {
    const float want = residual[i];
    residual[i] = want - static_cast<float>(q[i]) * scales[i / kInt8Block];
    err += static_cast<double>(residual[i]) * residual[i];
    norm += static_cast<double>(want) * want;
  }
  return norm > 0 ? std::sqrt(err / norm) : 0.0;
}

} // namespace hetrain
