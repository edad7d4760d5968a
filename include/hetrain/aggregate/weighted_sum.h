// The averaging step of the aggregator (DESIGN §5): out[j] = sum_i w_i * x_i[j], in one pass over
// the inputs, accumulated in fp32 in input order. Inputs are fp32, bf16 or fp16 (the wire dtypes);
// the output is fp32. This is the CPU path; the CUDA kernel (weighted_sum_cuda.h) has the same
// contract and gives the same results within fp32 rounding (it fuses multiply-adds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

// How numbers travel from trainers to rank 0 (--wire-dtype).
enum class DType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };
size_t dtype_bytes(DType dtype);
const char *dtype_name(DType dtype);        // "fp32", "bf16", "fp16": the --wire-dtype spelling
DType parse_dtype(const std::string &name); // throws UserError for any other name

// `inputs` are n pointers to `length` elements of `dtype` each, naturally aligned for it; `out`
// aliases none of them. Uses up to `threads` threads (0 = all usable cores) over contiguous
// blocks of the output.
void weighted_sum_cpu(const std::vector<const void *> &inputs, DType dtype,
                      const std::vector<float> &weights, float *out, int64_t length,
                      int threads = 0);
void weighted_sum_cpu(const std::vector<const float *> &inputs, const std::vector<float> &weights,
                      float *out, int64_t length, int threads = 0);

} // namespace hetrain
