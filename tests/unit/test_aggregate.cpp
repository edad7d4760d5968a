// The averaging step on the host: the CPU path, the CUDA kernel's body run on a simulated grid
// (so its indexing is checked on machines without a GPU), the 16-bit conversions, and the
// chunk-by-chunk reducer rank 0 uses.
#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/int8_codec.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/aggregate/weighted_sum_kernel.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"

#include "weighted_sum_cases.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <numeric>

namespace {
using namespace hetrain;
using namespace hetrain::testing;

// Runs every thread of a grid of `threads` threads on the host, as the kernel would on the device.
void simulate_kernel(const SumCase &c, const SumData &d, float *out, int64_t threads) {
  const std::vector<const void *> inputs = d.pointers();
  const kernel::VectorPlan plan = kernel::plan_vectors(
      inputs.data(), c.n, static_cast<int>(dtype_bytes(c.dtype)), 0, out, c.length);
  for (int64_t t = 0; t < threads; ++t) {
    if (c.dtype == DType::kFloat32)
      kernel::weighted_sum_thread<kernel::Fp32>(inputs.data(), d.weights.data(), c.n, 0, out,
                                                c.length, plan, t, threads);
    else if (c.dtype == DType::kBFloat16)
      kernel::weighted_sum_thread<kernel::Bf16>(inputs.data(), d.weights.data(), c.n, 0, out,
                                                c.length, plan, t, threads);
    else
      kernel::weighted_sum_thread<kernel::Fp16>(inputs.data(), d.weights.data(), c.n, 0, out,
                                                c.length, plan, t, threads);
  }
}

std::vector<float> poisoned(int64_t length, int shift, float **out) {
  std::vector<float> storage(static_cast<size_t>(length) + 8, NAN);
  // Place the output `shift` floats past a 16-byte boundary.
  const uintptr_t base = reinterpret_cast<uintptr_t>(storage.data());
  *out = storage.data() + ((16 - base % 16) % 16) / 4 + shift;
  return storage;
}

TEST(HalfConversion, EveryBf16AndFp16BitPatternWidensLikeLibTorch) {
  std::vector<uint16_t> all(65536);
  std::iota(all.begin(), all.end(), 0);
  for (auto [dtype, name] :
       {std::pair{torch::kBFloat16, "bf16"}, std::pair{torch::kHalf, "fp16"}}) {
    torch::Tensor expected =
        torch::from_blob(all.data(), {65536}, dtype).to(torch::kFloat32).contiguous();
    const float *e = expected.data_ptr<float>();
    for (size_t k = 0; k < all.size(); ++k) {
      const float got =
          dtype == torch::kBFloat16 ? kernel::bf16_to_float(all[k]) : kernel::fp16_to_float(all[k]);
      if (std::isnan(e[k]))
        ASSERT_TRUE(std::isnan(got)) << name << " bits " << k;
      else
        ASSERT_EQ(got, e[k]) << name << " bits " << k;
    }
  }
}

TEST(WeightedSumKernelBody, PlanFindsTheCommonAlignmentOrFallsBackToScalar) {
  alignas(16) float a[64], b[64], out[64];
  const void *aligned[] = {a, b};
  kernel::VectorPlan p = kernel::plan_vectors(aligned, 2, 4, 0, out, 64);
  EXPECT_EQ(p.head, 0);
  EXPECT_EQ(p.vectors, 16);
  const void *shifted[] = {a + 1, b + 1}; // all one float past the boundary: head of 3
  p = kernel::plan_vectors(shifted, 2, 4, 0, out + 1, 63);
  EXPECT_EQ(p.head, 3);
  EXPECT_EQ(p.vectors, 15);
  const void *mixed[] = {a, b + 1}; // no common alignment: all scalar
  p = kernel::plan_vectors(mixed, 2, 4, 0, out, 63);
  EXPECT_EQ(p.vectors, 0);
  p = kernel::plan_vectors(shifted, 2, 4, 0, out + 1, 2); // shorter than the head
  EXPECT_EQ(p.vectors, 0);
  // bf16 inputs at element offset 4 with an fp32 output: head 4 aligns both.
  const void *halves[] = {a};
  p = kernel::plan_vectors(halves, 1, 2, 4, out + 4, 40);
  EXPECT_EQ(p.head, 4);
  EXPECT_EQ(p.vectors, (40 - 4) / 8);
}

TEST(WeightedSumKernelBody, SimulatedGridMatchesFloat64ReferenceForEveryCase) {
  std::mt19937 rng(2026);
  for (const SumCase &c : standard_sum_cases()) {
    const SumData d = make_sum_data(c, rng);
    // One thread, an odd grid, and a grid larger than the work (idle threads).
    for (int64_t threads : {int64_t{1}, int64_t{7}, int64_t{4096}}) {
      if (c.length > 100000 && threads != 4096)
        continue;
      float *out = nullptr;
      std::vector<float> storage = poisoned(c.length, d.out_shift, &out);
      simulate_kernel(c, d, out, threads);
      EXPECT_LE(max_relative_error(c, d, out), kSumTolerance) << c.name() << " threads " << threads;
      if (c.alignment == SumCase::kSameShift && c.length > 64) { // the vector path was taken
        const std::vector<const void *> p = d.pointers();
        EXPECT_GT(kernel::plan_vectors(p.data(), c.n, static_cast<int>(dtype_bytes(c.dtype)), 0,
                                       out, c.length)
                      .head,
                  0)
            << c.name();
      }
      // Nothing written outside [0, length).
      EXPECT_TRUE(std::isnan(out[c.length])) << c.name();
    }
  }
}

TEST(WeightedSumCpu, EveryDtypeMatchesFloat64Reference) {
  std::mt19937 rng(7);
  for (const SumCase &c : standard_sum_cases()) {
    const SumData d = make_sum_data(c, rng);
    float *out = nullptr;
    std::vector<float> storage = poisoned(c.length, d.out_shift, &out);
    weighted_sum_cpu(d.pointers(), c.dtype, d.weights, out, c.length, 2);
    EXPECT_LE(max_relative_error(c, d, out), kSumTolerance) << c.name();
    EXPECT_TRUE(std::isnan(out[c.length])) << c.name();
  }
}

TEST(WeightedSum, NanAndInfInAnInputPropagate) {
  // 1 is finite in every dtype; NaN and Inf bit patterns per dtype.
  const uint16_t bf16_one = 0x3f80, bf16_nan = 0x7fc0, bf16_inf = 0x7f80;
  const uint16_t fp16_one = 0x3c00, fp16_nan = 0x7e00, fp16_inf = 0x7c00;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    const int64_t length = 40; // vectors and a tail
    SumCase c{length, 2, dtype, SumCase::kAligned};
    SumData d;
    const size_t elem = dtype_bytes(dtype);
    for (int i = 0; i < 2; ++i) {
      d.inputs.emplace_back(length * elem, 0, elem);
      for (int64_t j = 0; j < length; ++j) {
        const bool nan = i == 1 && (j == 5 || j == 37), inf = i == 1 && (j == 6 || j == 38);
        if (dtype == DType::kFloat32) {
          const float f = nan ? NAN : inf ? INFINITY : 1.0f;
          std::memcpy(d.inputs.back().data + 4 * j, &f, 4);
        } else {
          const bool bf = dtype == DType::kBFloat16;
          const uint16_t h = nan   ? (bf ? bf16_nan : fp16_nan)
                             : inf ? (bf ? bf16_inf : fp16_inf)
                                   : (bf ? bf16_one : fp16_one);
          std::memcpy(d.inputs.back().data + 2 * j, &h, 2);
        }
      }
      d.weights.push_back(0.5f);
    }
    for (int path = 0; path < 2; ++path) {
      std::vector<float> out(length, 0.0f);
      if (path == 0)
        weighted_sum_cpu(d.pointers(), dtype, d.weights, out.data(), length);
      else
        simulate_kernel(c, d, out.data(), 3);
      for (int64_t j : {5, 37})
        EXPECT_TRUE(std::isnan(out[j])) << dtype_name(dtype) << " path " << path << " j " << j;
      for (int64_t j : {6, 38})
        EXPECT_TRUE(std::isinf(out[j])) << dtype_name(dtype) << " path " << path << " j " << j;
      EXPECT_FLOAT_EQ(out[0], 1.0f);
    }
  }
  std::vector<float> a(3), out(3);
  EXPECT_THROW(weighted_sum_cpu({a.data()}, {1.0f, 2.0f}, out.data(), 3), std::invalid_argument);
  EXPECT_THROW(parse_dtype("fp8"), UserError);
  EXPECT_EQ(parse_dtype("bf16"), DType::kBFloat16);
}

TEST(ChunkReducer, ChunksInAnyOrderGiveTheWholeSum) {
  const int64_t numel = 10007, chunk = 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    ChunkReducer reducer(ReduceDevice::kCpu, 3, numel, dtype, 1);
    EXPECT_FALSE(reducer.receives_on_device());
    torch::Tensor data[3];
    for (size_t s = 0; s < 3; ++s) {
      data[s] =
          torch::randn({numel}).to(dtype == DType::kFloat32 ? torch::kFloat32 : torch::kBFloat16);
      std::memcpy(reducer.receive_buffer(s), data[s].data_ptr(),
                  static_cast<size_t>(numel) * dtype_bytes(dtype));
    }
    // Slots 0 and 2 take part this round; slot 1 is skipped.
    reducer.begin_round({0, 2}, {0.25f, 0.75f});
    std::vector<float> out(numel, NAN);
    for (int64_t c = (numel + chunk - 1) / chunk - 1; c >= 0; --c)
      reducer.reduce_chunk(c * chunk, std::min(chunk, numel - c * chunk), out.data());
    reducer.finish();
    torch::Tensor expected =
        0.25 * data[0].to(torch::kFloat32) + 0.75 * data[2].to(torch::kFloat32);
    EXPECT_TRUE(torch::allclose(torch::from_blob(out.data(), {numel}), expected, 1e-6, 1e-6))
        << dtype_name(dtype);
    EXPECT_THROW(reducer.reduce_chunk(numel - 5, 10, out.data()), std::out_of_range);
  }
}

TEST(ChunkReducer, CudaPathRefusesClearlyWithoutADevice) {
  std::string why;
  if (cuda_devices(&why) > 0)
    GTEST_SKIP() << "a GPU is visible: the CUDA reducer is tested by the gpu-labelled tests";
  EXPECT_FALSE(why.empty());
  // Without CUDA in the build: UserError; with CUDA but no device: the CUDA error via CHECK_CUDA.
  EXPECT_ANY_THROW(ChunkReducer(ReduceDevice::kCuda, 2, 100, DType::kFloat32));
}

} // namespace

// --aggregators: every element in exactly one piece, pieces no longer than a chunk, owners
// contiguous and ascending, shards within one 16-element block of each other and aligned; with
// one aggregator the pieces are exactly the unsharded chunks.
TEST(ShardLayout, PiecesCoverEveryElementOnceInBalancedAlignedShards) {
  for (int64_t numel : {1, 15, 16, 17, 1000, 134794, 431080})
    for (int64_t chunk : {1, 7, 16, 26214, 1 << 20})
      for (int a : {1, 2, 3, 5}) {
        if (a > 1 && (numel + 15) / 16 < a) {
          EXPECT_THROW(shard_layout(numel, chunk, a), UserError);
          continue;
        }
        if (chunk == 1 && numel > 1000)
          continue; // many pieces, nothing new
        const ShardLayout l = shard_layout(numel, chunk, a);
        SCOPED_TRACE(::testing::Message() << numel << " elements, chunk " << chunk << ", A " << a);
        ASSERT_EQ(l.aggregators(), a);
        EXPECT_EQ(l.shard_begin.front(), 0);
        EXPECT_EQ(l.shard_begin.back(), numel);
        int64_t at = 0;
        int owner = 0;
        for (size_t k = 0; k < l.pieces.size(); ++k) {
          const Piece &p = l.pieces[k];
          EXPECT_EQ(p.index, static_cast<int64_t>(k));
          EXPECT_EQ(p.begin, at);
          EXPECT_GT(p.length, 0);
          EXPECT_LE(p.length, chunk);
          EXPECT_GE(p.owner, owner);
          owner = p.owner;
          EXPECT_GE(p.begin, l.shard_begin[static_cast<size_t>(p.owner)]);
          EXPECT_LE(p.begin + p.length, l.shard_begin[static_cast<size_t>(p.owner) + 1]);
          EXPECT_EQ(l.piece_at(p.begin), static_cast<int64_t>(k));
          EXPECT_EQ(l.piece_at(p.begin + p.length - 1), static_cast<int64_t>(k));
          at += p.length;
        }
        EXPECT_EQ(at, numel);
        for (int j = 0; j < a; ++j) {
          EXPECT_EQ(l.shard_begin[static_cast<size_t>(j)] % 16, 0);
          EXPECT_GT(l.shard_length(j), 0);
          EXPECT_LE(std::abs(l.shard_length(j) - l.shard_length(0)), 16);
          EXPECT_EQ(l.pieces_of(j).front().owner, j);
        }
        if (a == 1) {
          ASSERT_EQ(static_cast<int64_t>(l.pieces.size()), chunk_count(numel, chunk));
          for (const Piece &p : l.pieces)
            EXPECT_EQ(p.begin, p.index * chunk);
        }
      }
}

// --wire-dtype int8 (aggregate/int8_codec.h).
TEST(Int8, EachElementWithinHalfAStepOfItsBlock) {
  std::vector<float> x(1000); // 3 full blocks of 256 and one of 232
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(0.37f * static_cast<float>(i)) * (i < 256 ? 1e-4f : 3.0f);
  std::vector<int8_t> q(x.size());
  std::vector<float> scales(static_cast<size_t>(int8_blocks(int64_t{1000}))), back(x.size());
  ASSERT_EQ(scales.size(), 4u);
  quantize_int8(x.data(), 1000, q.data(), scales.data());
  dequantize_int8(q.data(), scales.data(), 0, 1000, back.data());
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_LE(std::fabs(back[i] - x[i]), 0.5f * scales[i / 256] * 1.0001f) << i;
  // Each block's scale is its own: the small first block keeps its precision.
  EXPECT_LT(scales[0], 1e-6f);
  EXPECT_GT(scales[1], 1e-2f);
}

TEST(Int8, ANonFiniteValueShowsInItsBlockOnly) {
  std::vector<float> x(512, 0.5f);
  x[300] = -std::numeric_limits<float>::infinity();
  std::vector<int8_t> q(x.size());
  std::vector<float> scales(2), back(x.size());
  quantize_int8(x.data(), 512, q.data(), scales.data());
  dequantize_int8(q.data(), scales.data(), 0, 512, back.data());
  EXPECT_FLOAT_EQ(back[0], 0.5f);
  EXPECT_TRUE(std::isnan(back[260]));
}

// Blocks are fixed in the whole buffer: a piece carries the scales of every block it touches,
// and decodes exactly as the whole buffer does, however the buffer was cut.
TEST(Int8, PiecesDecodeAsTheWholeBufferDoes) {
  const std::vector<Piece> pieces{{0, 0, 600, 0}, {1, 600, 256, 0}, {2, 856, 10, 1}};
  const Int8Layout layout(pieces);
  EXPECT_EQ(int8_blocks(pieces[1]), 2); // elements 600..855: blocks 2 and 3
  EXPECT_EQ(layout.offset, (std::vector<int64_t>{0, 3, 5}));
  EXPECT_EQ(layout.scales, 6);
  std::vector<float> x(866), whole(866), cut(866);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::cos(0.11f * static_cast<float>(i)) * static_cast<float>(1 + i / 256);
  std::vector<int8_t> q(866);
  std::vector<float> scales(4);
  quantize_int8(x.data(), 866, q.data(), scales.data());
  dequantize_int8(q.data(), scales.data(), 0, 866, whole.data());
  for (const Piece &p : pieces) {
    // What the aggregator receives: the piece's values and its own copy of its scales.
    std::vector<float> own(scales.begin() + first_int8_block(p),
                           scales.begin() + first_int8_block(p) + int8_blocks(p));
    dequantize_int8(q.data() + p.begin, own.data(), p.begin, p.length, cut.data() + p.begin);
  }
  EXPECT_EQ(cut, whole);
}

// Error feedback: what one round's rounding loses goes into the next, so the sum of what was sent
// over many rounds stays within one rounding step of the sum wanted (it does not drift).
TEST(Int8, ErrorFeedbackLosesNothingOverRounds) {
  std::vector<float> x(1000), residual(1000, 0.0f), scales(4), back(1000);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::cos(1.3f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
  std::vector<int8_t> q(1000);
  std::vector<double> sent_sum(1000, 0.0);
  constexpr int kRounds = 50;
  double first_error = 0;
  for (int r = 0; r < kRounds; ++r) {
    const double e =
        quantize_with_feedback(x.data(), residual.data(), 1000, q.data(), scales.data());
    if (r == 0)
      first_error = e;
    dequantize_int8(q.data(), scales.data(), 0, 1000, back.data());
    for (size_t i = 0; i < x.size(); ++i)
      sent_sum[i] += back[i];
  }
  EXPECT_GT(first_error, 1e-3); // one round alone loses something
  EXPECT_LT(first_error, 1e-2);
  double err = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += std::pow(sent_sum[i] - kRounds * static_cast<double>(x[i]), 2);
    norm += std::pow(kRounds * static_cast<double>(x[i]), 2);
    ASSERT_NEAR(sent_sum[i], kRounds * x[i], std::fabs(residual[i]) + 1e-3) << i;
  }
  EXPECT_LT(std::sqrt(err / norm), first_error / 20);
}
