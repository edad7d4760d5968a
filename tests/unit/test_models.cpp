// Every model takes both dataset shapes and gives one logit per class.
#include "hetrain/common/error.h"
#include "hetrain/model/models.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace hetrain;

namespace {

TEST(Models, OutputShapesForFashionMnistAndCifarInputs) {
  for (const std::string &name : model_names()) {
    for (auto [c, side, classes] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 28, 10}, {3, 32, 10}, {3, 32, 100}}) {
      auto model = make_model(ModelSpec{name, c, side, side, classes});
      auto out = model->forward(torch::randn({5, c, side, side}));
      EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, classes})) << name << " " << c << "x" << side;
      EXPECT_TRUE(torch::isfinite(out).all().item<bool>()) << name;
    }
  }
}

TEST(Models, MlpHasTheDocumentedLayerSizes) {
  auto model = make_model(ModelSpec{"mlp", 1, 28, 28, 10});
  // 784-128-128-128-10 with biases.
  EXPECT_EQ(parameter_count(*model), 784 * 128 + 128 + 2 * (128 * 128 + 128) + 128 * 10 + 10);
}

TEST(Models, BatchNormModelsHaveRunningStatistics) {
  for (const char *name : {"cnn", "resnet"}) {
    auto model = make_model(ModelSpec{name, 1, 28, 28, 10});
    bool has_running_mean = false;
    for (const auto &b : model->named_buffers())
      has_running_mean |= b.key().find("running_mean") != std::string::npos;
    EXPECT_TRUE(has_running_mean) << name;
  }
}

TEST(Models, UnknownNameAndImpossibleShapesAreUserErrors) {
  EXPECT_THROW(make_model(ModelSpec{"transformer", 1, 28, 28, 10}), UserError);
  EXPECT_THROW(make_model(ModelSpec{"resnet", 1, 4, 4, 10}), UserError);
  EXPECT_THROW(make_model(ModelSpec{"mlp", 1, 28, 28, 0}), UserError);
  // A name that is neither built in nor a file.
  try {
    make_model(ModelSpec{"gpt.pt", 1, 28, 28, 10});
    FAIL() << "gpt.pt accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
  }
}

} // namespace
