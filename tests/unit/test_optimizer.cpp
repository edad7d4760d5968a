// The flat optimizer against torch::optim, step by step; flat gradient views against autograd's
// own per-parameter gradients; the learning-rate schedules.
#include "hetrain/model/models.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

using namespace hetrain;

namespace {

std::shared_ptr<Model> seeded_mlp() {
  torch::manual_seed(3);
  return make_model(ModelSpec{"mlp", 1, 6, 6, 4});
}

torch::Tensor loss_of(Model &model, int step) {
  torch::manual_seed(100 + step);
  auto x = torch::randn({8, 1, 6, 6});
  auto y = torch::randint(0, 4, {8});
  return torch::nn::functional::cross_entropy(model.forward(x), y);
}

TEST(FlatParameters, GradientsLandInTheFlatBufferAndEqualAutograd) {
  auto reference = seeded_mlp();
  auto model = seeded_mlp();
  FlatParameters flat(*model);
  loss_of(*reference, 0).backward();
  loss_of(*model, 0).backward();
  auto ref_params = reference->named_parameters();
  for (const ParameterSlot &slot : flat.slots()) {
    auto expected = ref_params[slot.name].grad();
    auto got = FlatParameters::view_of(flat.grads(), slot);
    EXPECT_TRUE(torch::allclose(got, expected, 1e-6, 1e-7)) << slot.name;
    // The module's own parameter reads the flat buffer.
    EXPECT_EQ(model->named_parameters()[slot.name].data_ptr(),
              FlatParameters::view_of(flat.params(), slot).data_ptr());
  }
  // A second backward accumulates in place, into the same memory.
  loss_of(*model, 1).backward();
  EXPECT_EQ(model->named_parameters()[flat.slots()[0].name].grad().data_ptr(),
            flat.grads().data_ptr());
}

struct OptimizerCase {
  std::string kind;
  double weight_decay;
};

void PrintTo(const OptimizerCase &c, std::ostream *os) {
  *os << c.kind << " wd=" << c.weight_decay;
}

class FlatOptimizerVsTorch : public ::testing::TestWithParam<OptimizerCase> {};

TEST_P(FlatOptimizerVsTorch, MatchesTorchOptimOverSeveralSteps) {
  const OptimizerCase c = GetParam();
  const double lr = c.kind.find("adam") == 0 ? 1e-2 : 5e-2;
  auto reference = seeded_mlp();
  std::unique_ptr<torch::optim::Optimizer> torch_opt;
  if (c.kind == "sgd")
    torch_opt = std::make_unique<torch::optim::SGD>(
        reference->parameters(), torch::optim::SGDOptions(lr).weight_decay(c.weight_decay));
  else if (c.kind == "momentum")
    torch_opt = std::make_unique<torch::optim::SGD>(
        reference->parameters(),
        torch::optim::SGDOptions(lr).momentum(0.9).weight_decay(c.weight_decay));
  else if (c.kind == "nesterov") // the outer optimizer of --sync diloco
    torch_opt = std::make_unique<torch::optim::SGD>(
        reference->parameters(),
        torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(c.weight_decay));
  else if (c.kind == "adam")
    torch_opt = std::make_unique<torch::optim::Adam>(
        reference->parameters(), torch::optim::AdamOptions(lr).weight_decay(c.weight_decay));
  else
    torch_opt = std::make_unique<torch::optim::AdamW>(
        reference->parameters(), torch::optim::AdamWOptions(lr).weight_decay(c.weight_decay));

  auto model = seeded_mlp();
  FlatParameters flat(*model);
  OptimizerOptions options;
  options.kind = c.kind;
  options.weight_decay = c.weight_decay;
  Optimizer ours(options, flat.numel());

  for (int step = 0; step < 6; ++step) {
    torch_opt->zero_grad();
    loss_of(*reference, step).backward();
    torch_opt->step();
    flat.zero_grads();
    loss_of(*model, step).backward();
    torch::Tensor params = flat.params();
    ours.step(params, flat.grads(), lr);
  }
  auto ref_params = reference->named_parameters();
  for (const ParameterSlot &slot : flat.slots()) {
    auto got = FlatParameters::view_of(flat.params(), slot);
    EXPECT_TRUE(torch::allclose(got, ref_params[slot.name], 1e-5, 1e-6))
        << c.kind << " " << slot.name << " max diff "
        << (got - ref_params[slot.name]).abs().max().item<double>();
  }
  EXPECT_EQ(ours.steps_taken(), 6);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, FlatOptimizerVsTorch,
                         ::testing::Values(OptimizerCase{"sgd", 0.0}, OptimizerCase{"sgd", 1e-2},
                                           OptimizerCase{"momentum", 0.0},
                                           OptimizerCase{"momentum", 1e-2},
                                           OptimizerCase{"nesterov", 0.0},
                                           OptimizerCase{"adam", 0.0}, OptimizerCase{"adam", 1e-2},
                                           OptimizerCase{"adamw", 1e-2}),
                         [](const ::testing::TestParamInfo<OptimizerCase> &info) {
                           return info.param.kind + (info.param.weight_decay > 0 ? "_wd" : "");
                         });

// The outer step of --sync diloco, worked by hand from PyTorch's SGD(nesterov=True) rule
// (buf = momentum * buf + g, the first buf = g; p -= lr * (g + momentum * buf)) at the defaults
// --outer-lr 0.7, --outer-momentum 0.9, for two steps:
//   p = 1:  g 0.5 -> buf 0.5, p 1 - 0.7 * 0.95 = 0.335;  g -0.25 -> buf 0.2, p 0.335 + 0.049 =
//   0.384 p = -2: g 1 -> buf 1, p -2 - 0.7 * 1.9 = -3.33;  g 0.5 -> buf 1.4, p -3.33 - 0.7 * 1.76 =
//   -4.562
TEST(Optimizer, NesterovMatchesATwoStepExampleWorkedByHand) {
  OptimizerOptions options;
  options.kind = "nesterov";
  options.momentum = 0.9;
  Optimizer outer(options, 2);
  auto p = torch::tensor({1.0f, -2.0f});
  outer.step(p, torch::tensor({0.5f, 1.0f}), 0.7);
  EXPECT_NEAR(p[0].item<float>(), 0.335, 1e-6);
  EXPECT_NEAR(p[1].item<float>(), -3.33, 1e-6);
  outer.step(p, torch::tensor({-0.25f, 0.5f}), 0.7);
  EXPECT_NEAR(p[0].item<float>(), 0.384, 1e-6);
  EXPECT_NEAR(p[1].item<float>(), -4.562, 1e-6);
  EXPECT_NEAR(outer.state().at(0).second[0].item<float>(), 0.2, 1e-7); // the momentum buffer
  EXPECT_NEAR(outer.state().at(0).second[1].item<float>(), 1.4, 1e-7);
}

TEST(Optimizer, StateRoundTripContinuesIdentically) {
  OptimizerOptions options;
  options.kind = "adam";
  Optimizer a(options, 10), b(options, 10);
  auto pa = torch::ones({10}), pb = torch::ones({10});
  auto g = torch::linspace(-1, 1, 10);
  a.step(pa, g, 0.1);
  b.load_state(a.state(), a.steps_taken());
  pb.copy_(pa);
  a.step(pa, g * 2, 0.1);
  b.step(pb, g * 2, 0.1);
  EXPECT_TRUE(torch::equal(pa, pb));
  OptimizerOptions sgd;
  sgd.kind = "sgd";
  Optimizer c(sgd, 10);
  EXPECT_ANY_THROW(c.load_state(a.state(), 1));
}

// --aggregators: optimizers stepping the shards of a flat buffer (each its own state) end where
// one optimizer stepping all of it does, and so does one optimizer stepping its ranges in turn.
TEST(Optimizer, ShardedStepsEqualOneWholeStep) {
  for (const std::string kind : {"momentum", "adam", "adamw"}) {
    SCOPED_TRACE(kind);
    OptimizerOptions options;
    options.kind = kind;
    options.weight_decay = 0.01;
    const int64_t n = 1000, cut = 368;
    torch::manual_seed(3);
    torch::Tensor whole = torch::randn({n}), ranged = whole.clone();
    torch::Tensor left = whole.narrow(0, 0, cut).clone(),
                  right = whole.narrow(0, cut, n - cut).clone();
    Optimizer one(options, n), by_range(options, n), first(options, cut), second(options, n - cut);
    for (int step = 0; step < 5; ++step) {
      const torch::Tensor g = torch::randn({n});
      one.step(whole, g, 0.01);
      by_range.step_range(ranged, g, 0.01, 0, n); // the whole range: the same as step
      first.step(left, g.narrow(0, 0, cut).contiguous(), 0.01);
      second.step(right, g.narrow(0, cut, n - cut).contiguous(), 0.01);
    }
    EXPECT_TRUE(torch::equal(whole, ranged));
    EXPECT_LT((torch::cat({left, right}) - whole).abs().max().item<float>(), 1e-6f);
    EXPECT_EQ(by_range.steps_taken(), 5);
    // A range step touches nothing outside its range, parameters and state alike.
    Optimizer part(options, n);
    torch::Tensor p = torch::ones({n});
    part.step_range(p, torch::ones({n}), 0.1, 100, 50);
    EXPECT_EQ(p.narrow(0, 0, 100).ne(1).sum().item<int64_t>(), 0);
    EXPECT_EQ(p.narrow(0, 100, 50).eq(1).sum().item<int64_t>(), 0);
    EXPECT_EQ(p.narrow(0, 150, n - 150).ne(1).sum().item<int64_t>(), 0);
    for (const auto &named : part.state())
      EXPECT_EQ(named.second.narrow(0, 150, n - 150).ne(0).sum().item<int64_t>(), 0) << named.first;
  }
}

TEST(LrSchedule, WarmupCosineAndStep) {
  LrSchedule s{"cosine", 1.0, 10, 1, 0.1, 110};
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 9), 1.0);
  EXPECT_NEAR(learning_rate(s, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(s, 60), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(s, 110), 0.0, 1e-12);
  LrSchedule step{"step", 1.0, 0, 5, 0.5, 100};
  EXPECT_DOUBLE_EQ(learning_rate(step, 4), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(step, 5), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(step, 12), 0.25);
  LrSchedule constant{"constant", 0.3, 0, 1, 0.1, 100};
  EXPECT_DOUBLE_EQ(learning_rate(constant, 99), 0.3);
}

} // namespace
