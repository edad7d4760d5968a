// The command line refuses bad flag values with one message and exit code 2, and writes nothing.
#include "test_util.h"

#include "hetrain/config/options.h"
#include "hetrain/model/models.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace hetrain;
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
      {"unknown_model",
       {"--model", "gpt"},
       "--model gpt: no such file (and not one of the built-in models mlp, cnn, resnet)"},
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
      {"outer_lr_without_diloco",
       {"--sync", "params", "--outer-lr", "0.5"},
       "--outer-optimizer/--outer-lr/--outer-momentum: only with --sync diloco"},
      {"outer_optimizer_without_diloco",
       {"--outer-optimizer", "sgd"},
       "--outer-optimizer/--outer-lr/--outer-momentum: only with --sync diloco"},
      {"local_steps_in_gradient_mode", {"--local-steps", "8"}, "--local-steps: only with --sync"},
      {"zero_sync_period",
       {"--sync", "diloco", "--local-steps", "0"},
       "--local-steps: must be at least 1, got 0"},
      {"sync_seconds_in_gradient_mode", {"--sync-seconds", "2"}, "--sync-seconds: only with"},
      {"sync_seconds_and_local_steps",
       {"--sync", "diloco", "--sync-seconds", "2", "--local-steps", "8"},
       "--sync-seconds and --local-steps: give one of them"},
      {"negative_sync_seconds",
       {"--sync", "params", "--sync-seconds", "-1"},
       "--sync-seconds: must be in [0, 86400]"},
      {"accept_joins_with_shards",
       {"--accept-joins", "/tmp/join.json", "--aggregators", "2"},
       "--accept-joins needs --aggregators 1"},
      {"sync_overlap_without_diloco",
       {"--sync", "params", "--sync-overlap"},
       "--sync-overlap: only with --sync diloco or auto"},
      {"sync_overlap_steps_without_overlap",
       {"--sync", "diloco", "--sync-overlap-steps", "2"},
       "--sync-overlap-steps: only with --sync-overlap"},
      {"auto_comm_fraction_without_auto",
       {"--auto-comm-fraction", "0.5"},
       "--auto-comm-fraction: only with --sync auto"},
      {"auto_comm_fraction_zero",
       {"--sync", "auto", "--auto-comm-fraction", "0"},
       "--auto-comm-fraction: must be in (0, 100]"},
      {"int8_with_auto",
       {"--sync", "auto", "--wire-dtype", "int8"},
       "--wire-dtype int8: only with"},
      {"auto_with_host_reduce_on",
       {"--sync", "auto", "--host-reduce", "on"},
       "--host-reduce on needs --sync gradient"},
      {"int8_in_gradient_mode",
       {"--wire-dtype", "int8"},
       "--wire-dtype int8: only with --sync diloco"},
      {"int8_in_params_mode",
       {"--sync", "params", "--wire-dtype", "int8"},
       "--wire-dtype int8: only with --sync diloco"},
      {"int8_with_averaging",
       {"--sync", "diloco", "--outer-optimizer", "average", "--wire-dtype", "int8"},
       "--wire-dtype int8: only with --sync diloco"},
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

// --- The option tables (config/options.h) and the enums' names (config/choices.h) ------------

template <class E> void expect_names_round_trip() {
  for (const NamedValue<E> &n : EnumNames<E>::table) {
    EXPECT_EQ(value_named<E>(n.name), n.value) << n.name;
    EXPECT_STREQ(name_of(n.value), n.name);
  }
  EXPECT_FALSE(value_named<E>("no-such-name").has_value());
  EXPECT_FALSE(value_named<E>("").has_value());
}

TEST(Options, EveryEnumNameRoundTrips) {
  expect_names_round_trip<SyncMode>();
  expect_names_round_trip<OuterOptimizer>();
  expect_names_round_trip<TrainerLoss>();
  expect_names_round_trip<WireDType>();
  expect_names_round_trip<AmpMode>();
  expect_names_round_trip<DeviceChoice>();
  expect_names_round_trip<DataResidency>();
  EXPECT_EQ(names_of<SyncMode>(), "gradient, params, diloco, auto");
  try {
    parse_named<WireDType>("wire-dtype", "fp8");
    FAIL() << "fp8 accepted";
  } catch (const UserError &e) {
    EXPECT_STREQ(e.what(), "--wire-dtype: 'fp8' is not one of fp32, bf16, fp16, int8");
  }
}

// A checkpoint's stored config is outside input: a value of another type or out of range is a
// UserError naming the key (it was a json::type_error, or undefined behaviour for 1e300).
TEST(Options, StoredConfigWithWrongTypesIsAUserError) {
  const auto refusal = [](const char *text) -> std::string {
    TrainConfig c;
    try {
      from_json(nlohmann::json::parse(text), c);
    } catch (const hetrain::UserError &e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(refusal(R"({"epochs": "lots"})").find("'epochs' is \"lots\""), std::string::npos);
  EXPECT_NE(refusal(R"({"epochs": 1e300})").find("not an integer in range"), std::string::npos);
  EXPECT_NE(refusal(R"({"threads": 99999999999999})").find("threads"), std::string::npos);
  EXPECT_NE(refusal(R"({"overlap": 1})").find("not true or false"), std::string::npos);
  EXPECT_NE(refusal(R"({"sync": 3})").find("not a string"), std::string::npos);
  EXPECT_EQ(refusal(R"({"lr": 1, "epochs": 3, "overlap": true})"), ""); // an integer lr is fine
}

// The config JSON is stored in every checkpoint: the same keys and the same names as when these
// options were strings, so old checkpoints still load and new ones read the same.
TEST(Options, ConfigJsonKeepsTheKeysAndNamesCheckpointsStore) {
  TrainConfig c;
  c.data = "train.h5";
  c.sync = SyncMode::kParams;
  c.on_trainer_loss = TrainerLoss::kContinue;
  c.wire_dtype = WireDType::kBf16;
  c.amp = AmpMode::kFp16;
  c.device = DeviceChoice::kCpu;
  c.aggregator_device = DeviceChoice::kCuda;
  c.data_residency = DataResidency::Stream;
  c.seed = 7;
  c.overlap = true;
  const nlohmann::json j = c;
  EXPECT_EQ(j["sync"], "params");
  EXPECT_EQ(j["on_trainer_loss"], "continue");
  EXPECT_EQ(j["wire_dtype"], "bf16");
  EXPECT_EQ(j["amp"], "fp16");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["aggregator_device"], "cuda");
  EXPECT_EQ(j["data_residency"], "stream");
  EXPECT_EQ(j["model"], "cnn");
  EXPECT_EQ(j["seed"], 7u);
  // Every key that checkpoints store: keys may be added (outer_* for --sync diloco), never renamed.
  const std::set<std::string> stored_keys = {"accept_joins",
                                             "aggregator_device",
                                             "aggregators",
                                             "aggregators_per_host",
                                             "amp",
                                             "augment",
                                             "auto_comm_fraction",
                                             "balance",
                                             "beta1",
                                             "beta2",
                                             "checkpoint_dir",
                                             "checkpoint_every",
                                             "chunk_mb",
                                             "data",
                                             "data_residency",
                                             "deterministic",
                                             "device",
                                             "epochs",
                                             "eps",
                                             "global_batch",
                                             "host_reduce",
                                             "join_timeout",
                                             "keep_checkpoints",
                                             "label_smoothing",
                                             "limit_train_samples",
                                             "link_probe_seconds",
                                             "local_steps",
                                             "loss",
                                             "lr",
                                             "lr_gamma",
                                             "lr_schedule",
                                             "lr_step_size",
                                             "metrics",
                                             "micro_batch",
                                             "min_relative_speed",
                                             "model",
                                             "model_plugin",
                                             "momentum",
                                             "on_trainer_loss",
                                             "optimizer",
                                             "outer_lr",
                                             "outer_momentum",
                                             "outer_optimizer",
                                             "overlap",
                                             "progress_seconds",
                                             "prometheus",
                                             "rebalance_every",
                                             "require_bf16",
                                             "require_gpu",
                                             "resume",
                                             "seed",
                                             "stall_warning",
                                             "straggler_timeout",
                                             "summary_json",
                                             "sync",
                                             "sync_overlap",
                                             "sync_overlap_steps",
                                             "sync_seconds",
                                             "synthetic",
                                             "test_data",
                                             "threads",
                                             "timeline",
                                             "warmup_steps",
                                             "weight_decay",
                                             "wire_dtype"};
  std::set<std::string> keys;
  for (const auto &item : j.items())
    keys.insert(item.key());
  EXPECT_EQ(keys, stored_keys);

  const TrainConfig back = j.get<TrainConfig>();
  EXPECT_EQ(nlohmann::json(back), j);
  EXPECT_EQ(back.sync, SyncMode::kParams);
  EXPECT_EQ(back.aggregator_device, DeviceChoice::kCuda);

  // A config written before a key existed loads with that option's default.
  nlohmann::json old = j;
  old.erase("amp");
  old.erase("sync");
  const TrainConfig from_old = old.get<TrainConfig>();
  EXPECT_EQ(from_old.amp, AmpMode::kOff);
  EXPECT_EQ(from_old.sync, SyncMode::kGradient);
  EXPECT_EQ(from_old.wire_dtype, WireDType::kBf16);

  nlohmann::json bad = j;
  bad["on_trainer_loss"] = "retry";
  try {
    bad.get<TrainConfig>();
    FAIL() << "retry accepted";
  } catch (const UserError &e) {
    EXPECT_STREQ(e.what(), "--on-trainer-loss: 'retry' is not one of abort, continue");
  }
}

TEST(Options, ModelHelpNamesTheBuiltInModels) {
  // --model takes a file too, so it has no fixed choices; its help names every built-in model.
  bool seen = false;
  visit_train_options([&](const OptionInfo &option, auto) {
    if (std::string(option.name) == "model") {
      EXPECT_TRUE(option.choices.empty());
      for (const std::string &name : model_names())
        EXPECT_NE(std::string(option.help).find(name), std::string::npos) << name;
      seen = true;
    }
  });
  EXPECT_TRUE(seen);
}

// The option names `train --help` lists at the start of its lines.
std::set<std::string> help_options(const std::string &help) {
  std::set<std::string> names;
  const std::regex line(R"(^\s*(?:-\w,)?(--[A-Za-z0-9][A-Za-z0-9-]*))");
  std::istringstream in(help);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_search(l, m, line))
      names.insert(m[1]);
  }
  return names;
}

TEST(Cli, EveryTableOptionIsInHelpAndOnlyTheTestingOnesAreHidden) {
  auto r = run_hetrain({"train", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::set<std::string> listed = help_options(r.output);
  std::set<std::string> expected = {"--help", "--config"};
  visit_train_options([&](const OptionInfo &option, auto) {
    EXPECT_NE(option.group, OptionGroup::kTesting) << option.name;
    EXPECT_NE(std::string(option.help), "") << option.name;
    expected.insert(std::string("--") + option.name);
  });
  EXPECT_EQ(listed, expected) << r.output;
  visit_fault_options([&](const OptionInfo &option, auto) {
    EXPECT_EQ(option.group, OptionGroup::kTesting) << option.name;
    EXPECT_EQ(r.output.find(option.name), std::string::npos) << option.name << " in --help";
  });
  EXPECT_EQ(r.output.find("Testing"), std::string::npos) << r.output;
}

TEST(Cli, HiddenTestingOptionsAreAccepted) {
  // Parsed (no "not expected"): the run then stops at the missing --data.
  visit_fault_options([&](const OptionInfo &option, auto) {
    auto r = run_hetrain({"train", std::string("--") + option.name, "5"});
    EXPECT_EQ(r.exit_code, 2) << option.name << ": " << r.output;
    EXPECT_NE(r.output.find("--data: a training dataset is required"), std::string::npos)
        << option.name << ": " << r.output;
  });
  auto r = run_hetrain({"train", "--fault-oom-above", "-1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--fault-oom-above: must be >= 0"), std::string::npos) << r.output;
}

TEST(Cli, BadEnumValueIsRefusedWithOneClearMessage) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--sync", "gradients"}, "--sync: 'gradients' is not one of gradient, params, diloco, auto"},
      {{"--outer-optimizer", "adam"},
       "--outer-optimizer: 'adam' is not one of nesterov, sgd, average"},
      {{"--on-trainer-loss", "retry"}, "--on-trainer-loss: 'retry' is not one of abort, continue"},
      {{"--wire-dtype", "fp8"}, "--wire-dtype: 'fp8' is not one of fp32, bf16, fp16, int8"},
      {{"--data-residency", "disk"}, "--data-residency: 'disk' is not one of auto, memory, stream"},
      {{"--device", "1"}, "--device: '1' is not one of auto, cuda, cpu"},
  };
  for (const auto &[args, message] : cases) {
    std::vector<std::string> all = {"train", "--data", "absent.h5"};
    all.insert(all.end(), args.begin(), args.end());
    auto r = run_hetrain(all);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(r.output.rfind("hetrain: error: " + message + "\n", 0), 0u) << r.output;
    // One error line (and the hint where to look), nothing else: the run did not start.
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 2) << r.output;
  }
  auto r = run_hetrain({"bench", "--device", "tpu"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--device: 'tpu' is not one of auto, cuda, cpu"), std::string::npos)
      << r.output;
}

} // namespace
