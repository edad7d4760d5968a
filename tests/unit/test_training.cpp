// One-process training: it learns, gradient accumulation is exact, checkpoints round-trip, and
// `hetrain evaluate` on the saved checkpoint reproduces the accuracy training printed.
#include "test_util.h"

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/run/training_run.h"
#include "hetrain/train/compute.h"
#include "hetrain/train/flat_parameters.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>

using namespace hetrain;
using namespace hetrain::testing;

namespace {

TEST(LocalTraining, ShortRunLowersTheLossAndLearnsTheToyProblem) {
  TempDir dir;
  auto train = write_synthetic_dataset(dir, "train.h5", 500, 4, 8, 1);
  auto test = write_synthetic_dataset(dir, "test.h5", 200, 4, 8, 2);
  TrainSummary s = run_local_training(toy_train_config(dir, train, test));
  ASSERT_EQ(s.history.size(), 3u);
  EXPECT_LT(s.history[2].train_loss, 0.5 * s.history[0].train_loss);
  EXPECT_GT(s.test_accuracy, 0.9);
  // 500 samples in rounds of 64: 7 full rounds and one of 52, every epoch.
  EXPECT_EQ(s.steps, 3 * 8);
  EXPECT_EQ(s.samples, 3 * 500);
  for (const EpochRecord &r : s.history)
    EXPECT_EQ(r.samples, 500);
}

TEST(LocalTraining, GradientAccumulationEqualsOneBigBatch) {
  TempDir dir;
  auto train = write_synthetic_dataset(dir, "train.h5", 256, 4, 8, 1);
  TrainConfig a = toy_train_config(dir, train, "");
  a.epochs = 1;
  a.micro_batch = 8; // 8 micro-batches a step
  TrainConfig b = a;
  b.micro_batch = 64; // one pass a step
  b.checkpoint_dir = dir.path("ckpt-b");
  auto ca = read_checkpoint(run_local_training(a).final_checkpoint);
  auto cb = read_checkpoint(run_local_training(b).final_checkpoint);
  // The same sums in another order: compared after 4 steps, long before rounding differences grow
  // (training is chaotic: 1e-7 stays 1e-7 for dozens of steps, then grows); measured ~1e-7.
  ASSERT_EQ(ca.params.size(), cb.params.size());
  for (size_t i = 0; i < ca.params.size(); ++i) {
    const auto &x = ca.params[i].second, &y = cb.params[i].second;
    double rel = (x - y).norm().item<double>() / y.norm().item<double>();
    EXPECT_LT(rel, 1e-5) << ca.params[i].first;
  }
}

// --overlap's contract: every parameter is reported once, and when it is, its gradient is final
// (a copy taken at report time equals the gradient after the whole pass). cnn: BatchNorm and
// parameters without bias, reported in backward's order, not the flat buffer's.
TEST(Overlap, EveryParameterIsReportedOnceWithItsFinalGradient) {
  TempDir dir;
  auto path = write_synthetic_dataset(dir, "d.h5", 96, 4, 8, 1);
  Dataset data(path);
  for (const char *name : {"mlp", "cnn"}) {
    torch::manual_seed(3);
    auto model = make_model(ModelSpec{name, 1, 8, 8, 4});
    FlatParameters flat(*model);
    flat.zero_grads();
    std::vector<int64_t> indices(96);
    std::iota(indices.begin(), indices.end(), 0);
    std::vector<torch::Tensor> at_report(flat.slots().size());
    std::vector<size_t> order;
    accumulate_gradients(
        *model, LossSpec{}, data, SampleRun{indices.data(), 96}, 32, {}, [&](size_t i) {
          at_report.at(i) = FlatParameters::view_of(flat.grads(), flat.slots()[i]).clone();
          order.push_back(i);
        });
    ASSERT_EQ(order.size(), flat.slots().size()) << name;
    std::vector<size_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << name;
    for (size_t i = 0; i < flat.slots().size(); ++i)
      EXPECT_TRUE(at_report[i].equal(FlatParameters::view_of(flat.grads(), flat.slots()[i])))
          << name << ": " << flat.slots()[i].name << " changed after it was reported";
    // Backward reaches the output layer first: the first reports are the last parameters.
    EXPECT_GT(order.front(), order.back()) << name;
  }
}

TEST(Checkpoint, WriteThenReadGivesIdenticalTensorsAndAttributes) {
  TempDir dir;
  CheckpointContents c;
  c.model = ModelSpec{"cnn", 3, 32, 32, 10};
  c.norm_mean = {0.1, 0.2, 0.3};
  c.norm_std = {0.4, 0.5, 0.6};
  c.position = TrainingPosition{2, 640, 10, 95, 12345};
  c.seed = 99;
  c.world_size = 4;
  c.config_json = R"({"model":"cnn"})";
  c.params = {{"a.weight", torch::randn({3, 4})},
              {"a.bias", torch::randn({3})},
              {"z.first", torch::randn({2, 2, 2})}};
  c.buffers = {{"bn.running_mean", torch::randn({3})},
               {"bn.num_batches_tracked", torch::tensor(int64_t{7})}};
  c.optimizer.kind = "adam";
  c.learning_rate = 0.01;
  c.optimizer_steps = 95;
  c.optimizer_state = {{"exp_avg", {{"a.weight", torch::randn({3, 4})}}},
                       {"exp_avg_sq", {{"a.weight", torch::rand({3, 4})}}}};
  c.cluster_reports = {R"({"rank":1})", R"({"rank":2})"};
  c.trainer_optimizer_kind = "momentum";
  c.trainer_optimizers = {{2, 7, {{"momentum_buffer", {{"a.weight", torch::randn({3, 4})}}}}},
                          {11, 9, {{"momentum_buffer", {{"a.weight", torch::randn({3, 4})}}}}}};
  EpochRecord r;
  r.epoch = 1;
  r.test_accuracy = 0.875;
  r.seconds = 3.5;
  c.epochs = {r};
  write_checkpoint(dir.path("c.h5"), c);
  EXPECT_EQ(dir.files(), std::vector<std::string>{"c.h5"}); // no temporary left

  CheckpointContents d = read_checkpoint(dir.path("c.h5"));
  EXPECT_EQ(d.model.name, "cnn");
  EXPECT_EQ(d.model.in_channels, 3);
  EXPECT_EQ(d.norm_std, c.norm_std);
  EXPECT_EQ(d.position.epoch_position, 640);
  EXPECT_EQ(d.position.samples_seen, 12345);
  EXPECT_EQ(d.seed, 99u);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.config_json, c.config_json);
  ASSERT_EQ(d.params.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d.params[i].first, c.params[i].first); // model order, not alphabetical
    EXPECT_TRUE(torch::equal(d.params[i].second, c.params[i].second));
  }
  EXPECT_TRUE(torch::equal(d.buffers[1].second, c.buffers[1].second));
  EXPECT_EQ(d.buffers[1].second.scalar_type(), torch::kInt64);
  ASSERT_EQ(d.optimizer_state.size(), 2u);
  EXPECT_EQ(d.optimizer_state[1].first, "exp_avg_sq");
  EXPECT_TRUE(
      torch::equal(d.optimizer_state[1].second[0].second, c.optimizer_state[1].second[0].second));
  EXPECT_EQ(d.optimizer.kind, "adam");
  EXPECT_EQ(d.optimizer_steps, 95);
  EXPECT_EQ(d.cluster_reports, c.cluster_reports);
  EXPECT_EQ(d.trainer_optimizer_kind, "momentum");
  ASSERT_EQ(d.trainer_optimizers.size(), 2u);
  for (const TrainerOptimizerContents &want : c.trainer_optimizers) {
    auto got = std::find_if(d.trainer_optimizers.begin(), d.trainer_optimizers.end(),
                            [&](const auto &t) { return t.rank == want.rank; });
    ASSERT_NE(got, d.trainer_optimizers.end()) << want.rank;
    EXPECT_EQ(got->steps, want.steps);
    ASSERT_EQ(got->state.size(), 1u);
    EXPECT_EQ(got->state[0].first, "momentum_buffer");
    EXPECT_TRUE(torch::equal(got->state[0].second.at(0).second, want.state[0].second[0].second));
  }
  ASSERT_EQ(d.epochs.size(), 1u);
  EXPECT_DOUBLE_EQ(d.epochs[0].test_accuracy, 0.875);
}

TEST(Checkpoint, MismatchedTensorsAreNamed) {
  TempDir dir;
  auto model = make_model(ModelSpec{"mlp", 1, 8, 8, 4});
  CheckpointContents c;
  c.model = ModelSpec{"mlp", 1, 8, 8, 4};
  for (const auto &p : model->named_parameters())
    c.params.emplace_back(p.key(), p.value().detach().clone());
  CheckpointContents missing = c;
  missing.params.pop_back();
  try {
    load_model_state(missing, *model, "x.h5");
    ADD_FAILURE() << "missing tensor accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("'out.bias' is missing"), std::string::npos) << e.what();
  }
  CheckpointContents wrong = c;
  wrong.params[0].second = torch::zeros({3, 3});
  try {
    load_model_state(wrong, *model, "x.h5");
    ADD_FAILURE() << "wrong shape accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("has shape [3,3]"), std::string::npos) << e.what();
  }
  // Not a checkpoint at all (a dataset file), and a truncated checkpoint.
  auto data = write_synthetic_dataset(dir, "d.h5", 10, 2, 4, 1);
  EXPECT_THROW(read_checkpoint(data), UserError);
  write_checkpoint(dir.path("c.h5"), c);
  std::filesystem::copy_file(dir.path("c.h5"), dir.path("cut.h5"));
  std::filesystem::resize_file(dir.path("cut.h5"),
                               std::filesystem::file_size(dir.path("c.h5")) / 3);
  EXPECT_THROW(read_checkpoint(dir.path("cut.h5")), UserError);
}

TEST(AtomicOutputFile, NothingAppearsUnlessCommitted) {
  TempDir dir;
  {
    AtomicOutputFile out(dir.path("f.txt"));
    std::ofstream(out.temp_path()) << "partial";
    EXPECT_TRUE(std::filesystem::exists(out.temp_path()));
  } // an exception unwinding through here would do the same
  EXPECT_TRUE(dir.files().empty());
  EXPECT_THROW(AtomicOutputFile(dir.path("no-such-dir/f.txt")), UserError);
  write_text_file_atomically(dir.path("g.txt"), "whole");
  EXPECT_EQ(dir.files(), std::vector<std::string>{"g.txt"});
}

TEST(EndToEnd, EvaluateOnTheSavedCheckpointGivesTheAccuracyTrainingPrinted) {
  TempDir dir;
  auto train = write_synthetic_dataset(dir, "train.h5", 300, 3, 8, 5);
  auto test = write_synthetic_dataset(dir, "test.h5", 150, 3, 8, 6);
  auto r = run_hetrain({"train",
                        "--data",
                        train,
                        "--test-data",
                        test,
                        "--model",
                        "cnn",
                        "--epochs",
                        "1",
                        "--global-batch",
                        "30",
                        "--micro-batch",
                        "10",
                        "--lr",
                        "0.01",
                        "--threads",
                        "1",
                        "--checkpoint-dir",
                        dir.path("ck"),
                        "--summary-json",
                        dir.path("summary.json")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto summary = nlohmann::json::parse(std::ifstream(dir.path("summary.json")));
  for (const char *key : {"world_size", "model", "epochs", "steps", "samples_per_sec",
                          "epoch_seconds", "test_accuracy", "final_train_loss", "final_checkpoint"})
    EXPECT_TRUE(summary.contains(key)) << key;
  EXPECT_EQ(summary["world_size"], 1);
  EXPECT_EQ(summary["steps"], 10);
  double trained = summary["test_accuracy"];
  EXPECT_NE(r.output.find(fmt::format("test accuracy {:.4f}", trained)), std::string::npos)
      << r.output;

  auto e = run_hetrain(
      {"evaluate", "--checkpoint", summary["final_checkpoint"], "--data", test, "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.output;
  auto evaluated = nlohmann::json::parse(e.output);
  EXPECT_DOUBLE_EQ(evaluated["accuracy"].get<double>(), trained);
  EXPECT_EQ(evaluated["samples"], 150);

  auto inspect = run_hetrain({"inspect", summary["final_checkpoint"], "--json"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  auto info = nlohmann::json::parse(inspect.output);
  EXPECT_EQ(info["model"], "cnn");
  EXPECT_EQ(info["global_step"], 10);
  EXPECT_EQ(info["epoch"], 1);

  // The same checkpoint against data of another shape is refused, naming both shapes.
  auto rgb = write_synthetic_dataset(dir, "rgb.h5", 20, 3, 8, 7, /*channels=*/3);
  auto bad = run_hetrain({"evaluate", "--checkpoint", summary["final_checkpoint"], "--data", rgb});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("3x8x8"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("1x8x8"), std::string::npos) << bad.output;
}

} // namespace

namespace {

TEST(Resume, OneProcessContinuesExactlyFromEpochAndStepCheckpoints) {
  TempDir dir;
  auto train = write_synthetic_dataset(dir, "train.h5", 320, 4, 8, 1);
  TrainConfig straight = toy_train_config(dir, train, "");
  straight.epochs = 2;
  straight.checkpoint_dir = dir.path("straight");
  const auto reference = read_checkpoint(run_local_training(straight).final_checkpoint);

  // One epoch, then --resume auto for the second; and from a step checkpoint mid-epoch.
  TrainConfig first = straight;
  first.epochs = 1;
  first.checkpoint_every = 3;
  first.keep_checkpoints = 10;
  first.checkpoint_dir = dir.path("split");
  run_local_training(first);
  TrainConfig second = straight;
  second.checkpoint_dir = dir.path("split");
  second.resume = "auto";
  TrainSummary resumed = run_local_training(second);
  ASSERT_EQ(resumed.history.size(), 2u);
  EXPECT_EQ(resumed.steps, 2 * 5); // 320 samples in steps of 64
  TrainConfig mid = straight;
  mid.checkpoint_dir = dir.path("mid");
  mid.resume = dir.path("split") + "/ckpt-s00000003-step.h5";
  TrainSummary from_mid = run_local_training(mid);
  // A resume in one process is the same computation as the uninterrupted run (the same batches in
  // the same order, the optimizer state restored bit for bit), so the result is bit-identical:
  // no tolerance, which would only hide a state that is restored almost right.
  for (const TrainSummary *s : {&resumed, &from_mid}) {
    const auto c = read_checkpoint(s->final_checkpoint);
    ASSERT_EQ(c.params.size(), reference.params.size());
    for (size_t i = 0; i < c.params.size(); ++i) {
      const auto &x = c.params[i].second, &y = reference.params[i].second;
      EXPECT_TRUE(torch::equal(x, y))
          << c.params[i].first << ": max abs difference " << (x - y).abs().max().item<double>();
    }
  }
}

TEST(Resume, AutoWithoutCheckpointsStartsAfreshAndBadPathsAreRefused) {
  TempDir dir;
  auto train = write_synthetic_dataset(dir, "train.h5", 128, 4, 8, 1);
  TrainConfig c = toy_train_config(dir, train, "");
  c.epochs = 1;
  c.resume = "auto";
  EXPECT_EQ(run_local_training(c).history.size(), 1u);
  c.resume = dir.path("absent.h5");
  EXPECT_THROW(run_local_training(c), UserError);
  c.resume = train; // a dataset, not a checkpoint
  EXPECT_THROW(run_local_training(c), UserError);
}

} // namespace
