// The averaging step of the aggregator (DESIGN §7): out[j] = sum_i w_i * x_i[j], in one pass over
// the inputs, accumulated in fp32. This is the CPU path; the CUDA kernel (issue 4) keeps the
// same interface and results.
#pragma once

#include <cstdint>
#include <vector>

namespace hetrain {

// `inputs` are n pointers to `length` floats each; `out` may alias none of them. Uses up to
// `threads` threads (0 = all usable cores) over contiguous blocks of the output.
void weighted_sum_cpu(const std::vector<const float *> &inputs, const std::vector<float> &weights,
                      float *out, int64_t length, int threads = 0);

} // namespace hetrain
