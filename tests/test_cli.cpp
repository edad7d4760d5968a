// The command line refuses bad flag values with one message and exit code 2, and writes nothing.
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace hetrain::testing;

namespace {

struct BadFlags {
  const char *name;
  std::vector<std::string> args;
  const char *phrase;
};

TEST(Cli, BadFlagValuesAreRefusedWithExitCode2) {
  TempDir dir;
  auto data = write_synthetic_dataset(dir, "d.h5", 40, 2, 8, 1);
  std::vector<BadFlags> cases = {
      {"zero_epochs", {"--epochs", "0"}, "--epochs: must be positive"},
      {"text_epochs", {"--epochs", "many"}, "many"},
      {"negative_lr", {"--lr", "-0.1"}, "--lr: must be positive"},
      {"indivisible_batch", {"--global-batch", "100", "--micro-batch", "32"}, "not divisible"},
      {"zero_micro_batch", {"--micro-batch", "0"}, "--micro-batch: must be positive"},
      {"unknown_model", {"--model", "gpt"}, "'gpt' is not one of mlp, cnn, resnet"},
      {"unknown_optimizer", {"--optimizer", "lion"}, "'lion' is not one of"},
      {"unknown_schedule", {"--lr-schedule", "linear"}, "--lr-schedule"},
      {"bad_device", {"--device", "tpu"}, "--device"},
      {"bad_aggregator_device", {"--aggregator-device", "tpu"}, "--aggregator-device: 'tpu'"},
      {"bad_amp", {"--amp", "fp8"}, "--amp: 'fp8' is not one of off, bf16, fp16"},
      {"fp16_amp_on_cpu", {"--amp", "fp16", "--device", "cpu"}, "--amp fp16 needs a CUDA device"},
      {"momentum_one", {"--optimizer", "momentum", "--momentum", "1"}, "--momentum"},
      {"unknown_flag", {"--learning-rate", "0.1"}, "--learning-rate"},
      {"missing_data_file", {"--data", dir.path("absent.h5")}, "absent.h5: no such file"},
      {"data_not_hdf5", {"--data", dir.path("summary-dir")}, "is a directory"},
      {"test_shape_mismatch", {"--test-data", "RGB"}, "3x8x8"},
  };
  std::filesystem::create_directory(dir.path("summary-dir"));
  auto rgb = write_synthetic_dataset(dir, "rgb.h5", 10, 2, 8, 3, /*channels=*/3);
  for (const BadFlags &c : cases) {
    std::vector<std::string> args = {"train",
                                     "--data",
                                     data,
                                     "--epochs",
                                     "1",
                                     "--checkpoint-dir",
                                     dir.path("ck"),
                                     "--summary-json",
                                     dir.path("summary.json")};
    for (const std::string &a : c.args)
      args.push_back(a == "RGB" ? rgb : a);
    auto r = run_hetrain(args);
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.phrase), std::string::npos) << c.name << ": " << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << c.name;
    EXPECT_FALSE(std::filesystem::exists(dir.path("summary.json"))) << c.name;
  }
}

TEST(Cli, UnknownSubcommandAndMissingArgumentsAreRefused) {
  auto r = run_hetrain({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_hetrain({});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_hetrain({"evaluate", "--data", "x.h5"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--checkpoint"), std::string::npos) << r.output;
  r = run_hetrain({"bench", "--seconds", "-1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(Cli, HelpAndVersionSucceed) {
  auto r = run_hetrain({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("train"), std::string::npos);
  r = run_hetrain({"train", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--global-batch"), std::string::npos);
}

TEST(Cli, BenchReportsTheBlasInUse) {
  auto r = run_hetrain({"bench", "--json", "--seconds", "0.2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"blas\""), std::string::npos);
  EXPECT_NE(r.output.find("\"library\""), std::string::npos);
  EXPECT_NE(r.output.find("\"matmul_gflops\""), std::string::npos);
  auto report = nlohmann::json::parse(r.output);
  EXPECT_GT(report["training_probe"]["samples_per_sec"].get<double>(), 0.0);
  EXPECT_EQ(report["training_probe"]["model"], "cnn");
  r = run_hetrain({"bench", "--model", "gpt"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(Cli, ConfigFileSetsOptions) {
  TempDir dir;
  auto data = write_synthetic_dataset(dir, "d.h5", 40, 2, 8, 1);
  {
    std::ofstream(dir.path("run.toml")) << "model = \"mlp\"\nepochs = 1\nglobal-batch = 20\n"
                                           "micro-batch = 10\n";
  }
  auto r = run_hetrain({"train", "--config", dir.path("run.toml"), "--data", data,
                        "--checkpoint-dir", dir.path("ck"), "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("model mlp"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 steps per epoch"), std::string::npos) << r.output;
  std::ofstream(dir.path("bad.toml")) << "epochs = \"lots\"\n";
  r = run_hetrain({"train", "--config", dir.path("bad.toml"), "--data", data});
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

} // namespace
