// --amp: autocast really changes the forward pass yet keeps gradients close, bf16 training still
// learns, and the fp16 loss-scale rules (halve on overflow, grow after a run of finite rounds).
#include "test_util.h"

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/common/error.h"
#include "hetrain/data/dataset.h"
#include "hetrain/run/training_run.h"
#include "hetrain/train/amp.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>

using namespace hetrain;
using namespace hetrain::testing;

namespace {

torch::Tensor gradient_with(const std::string &amp, const std::string &model_name,
                            const Dataset &data) {
  torch::manual_seed(3);
  auto model = make_model({model_name, 1, 28, 28, 4});
  FlatParameters flat(*model);
  std::vector<int64_t> indices(static_cast<size_t>(data.size()));
  std::iota(indices.begin(), indices.end(), 0);
  MixedPrecision mp(amp, torch::Device(torch::kCPU));
  mp.gradients(*model, LossSpec{}, data, SampleRun{indices.data(), data.size()}, 16, flat);
  return flat.grads().clone();
}

TEST(MixedPrecision, Bf16AutocastChangesTheForwardYetKeepsTheGradientClose) {
  TempDir dir;
  Dataset data(write_synthetic_dataset(dir, "d.h5", 64, 4, 28, 1));
  for (const std::string model : {"mlp", "cnn"}) {
    const torch::Tensor fp32 = gradient_with("off", model, data);
    const torch::Tensor bf16 = gradient_with("bf16", model, data);
    const double rel = (fp32 - bf16).norm().item<double>() / fp32.norm().item<double>();
    EXPECT_GT(rel, 1e-5) << model << ": identical gradients, autocast did not take effect";
    EXPECT_LT(rel, 0.05) << model << ": bf16 gradient too far from fp32";
    EXPECT_TRUE(torch::isfinite(bf16).all().item<bool>());
  }
}

TEST(MixedPrecision, ModesAndDevicesAreChecked) {
  EXPECT_FALSE(MixedPrecision("off", torch::Device(torch::kCPU)).enabled());
  EXPECT_TRUE(MixedPrecision("bf16", torch::Device(torch::kCPU)).enabled());
  EXPECT_THROW(MixedPrecision("fp16", torch::Device(torch::kCPU)), UserError);
  EXPECT_THROW(MixedPrecision("fp8", torch::Device(torch::kCPU)), UserError);
}

TEST(MixedPrecision, Fp16LossScaleHalvesOnOverflowAndGrowsAfterFiniteRounds) {
  // The rules only; no CUDA work is done by constructing for a CUDA device.
  MixedPrecision mp("fp16", torch::Device(torch::kCUDA, 0));
  const double start = mp.loss_scale();
  EXPECT_EQ(start, 65536.0);
  torch::Tensor g = torch::full({4}, 2.0 * start);
  EXPECT_TRUE(mp.unscale(g));
  EXPECT_TRUE(torch::allclose(g, torch::full({4}, 2.0))); // divided by the scale
  torch::Tensor overflow = torch::tensor({1.0f, INFINITY, 3.0f, 4.0f});
  EXPECT_FALSE(mp.unscale(overflow));
  EXPECT_EQ(mp.loss_scale(), start / 2);
  for (int64_t i = 0; i < MixedPrecision::kGrowthInterval - 1; ++i) {
    torch::Tensor ok = torch::ones({4});
    ASSERT_TRUE(mp.unscale(ok));
  }
  EXPECT_EQ(mp.loss_scale(), start / 2); // not yet
  torch::Tensor ok = torch::ones({4});
  EXPECT_TRUE(mp.unscale(ok));
  EXPECT_EQ(mp.loss_scale(), start); // grown after kGrowthInterval finite rounds
}

TEST(MixedPrecision, Bf16TrainingStillLearnsTheToyProblem) {
  TempDir dir;
  TrainConfig c = toy_train_config(dir, write_synthetic_dataset(dir, "train.h5", 500, 4, 8, 1),
                                   write_synthetic_dataset(dir, "test.h5", 200, 4, 8, 2));
  c.amp = AmpMode::kBf16;
  TrainSummary s = run_local_training(c);
  EXPECT_EQ(s.amp, "bf16");
  EXPECT_GT(s.test_accuracy, 0.9);
  // Parameters stay fp32 in the checkpoint.
  auto ckpt = read_checkpoint(s.final_checkpoint);
  EXPECT_EQ(ckpt.params.front().second.scalar_type(), torch::kFloat32);
}

} // namespace
