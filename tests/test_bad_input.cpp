// Every user-facing entry point answers malformed input the same way (issue 5, DESIGN §8): one
// line "hetrain: error: ..." naming the thing and the problem, exit code 2, no crash, and no
// output file left behind. Each case here goes through the binary, as a user would meet it.
// (More of the same: Cli.BadFlagValuesAreRefusedWithExitCode2, MalformedIdx.*, CifarImport.*.)
#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/data/dataset_file.h"

#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

using namespace hetrain;
using namespace hetrain::testing;
namespace fs = std::filesystem;

namespace {

void truncate_to_half(const std::string &from, const std::string &to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::resize_file(to, fs::file_size(to) / 2);
}

// Edits one object of an HDF5 file in place.
void edit_h5(const std::string &path, const std::function<void(hid_t)> &edit) {
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  ASSERT_GE(file.get(), 0) << path;
  edit(file);
}

struct BadInput {
  std::string name;
  std::vector<std::string> args;
  std::string phrase;       // what the one line must say
  std::string prefix = "";  // shell words before the binary (the full-disk case)
  std::string outputs = ""; // a folder that must hold no file afterwards (besides the defaults)
};

class BadInputTest : public ::testing::Test {
protected:
  TempDir dir;
  std::string good_data, rgb_data, good_checkpoint;

  void SetUp() override {
    good_data = write_synthetic_dataset(dir, "good.h5", 64, 4, 8, 1);
    rgb_data = write_synthetic_dataset(dir, "rgb.h5", 16, 4, 8, 2, /*channels=*/3);
    // A real checkpoint of a short run, to break in different ways.
    auto r = run_hetrain({"train", "--data", good_data, "--model", "mlp", "--epochs", "1",
                          "--global-batch", "32", "--micro-batch", "16", "--threads", "1",
                          "--checkpoint-dir", dir.path("made")});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const auto &entry : fs::directory_iterator(dir.path("made")))
      good_checkpoint = entry.path().string();
    ASSERT_FALSE(good_checkpoint.empty());
  }

  std::string copy_checkpoint(const std::string &name) {
    fs::copy_file(good_checkpoint, dir.path(name));
    return dir.path(name);
  }

  // train with the outputs under dir/out (checkpoints) and dir/out.json (summary).
  std::vector<std::string> train(std::vector<std::string> extra) {
    std::vector<std::string> args = {"train",
                                     "--model",
                                     "mlp",
                                     "--epochs",
                                     "1",
                                     "--global-batch",
                                     "32",
                                     "--micro-batch",
                                     "16",
                                     "--threads",
                                     "1",
                                     "--summary-json",
                                     dir.path("out.json")};
    if (std::find(extra.begin(), extra.end(), "--data") == extra.end()) {
      args.push_back("--data");
      args.push_back(good_data);
    }
    if (std::find(extra.begin(), extra.end(), "--checkpoint-dir") == extra.end()) {
      args.push_back("--checkpoint-dir");
      args.push_back(dir.path("out"));
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::vector<std::string> evaluate(const std::string &checkpoint, const std::string &data) {
    return {"evaluate", "--checkpoint", checkpoint, "--data", data};
  }

  static size_t files_under(const std::string &folder) {
    std::error_code ec;
    if (!fs::exists(folder, ec))
      return 0;
    size_t n = 0;
    for (const auto &entry : fs::recursive_directory_iterator(folder))
      n += entry.is_regular_file() ? 1 : 0;
    return n;
  }
};

TEST_F(BadInputTest, EveryEntryPointRefusesWithOneLineAndExitCode2AndLeavesNoFile) {
  // --- dataset files ---
  write_raw_dataset(dir.path("length.h5"), h5::Kind::U8, {3, 1, 2, 2}, {0, 1});
  write_raw_dataset(dir.path("negative.h5"), h5::Kind::U8, {2, 1, 2, 2}, {0, -1});
  write_raw_dataset(dir.path("zero.h5"), h5::Kind::U8, {0, 1, 2, 2}, {});
  write_raw_dataset(dir.path("float.h5"), h5::Kind::F64, {2, 1, 2, 2}, {0, 1});
  write_raw_dataset(dir.path("nolabels.h5"), h5::Kind::U8, {2, 1, 2, 2}, {}, false);
  fs::copy_file(good_data, dir.path("range.h5"));
  edit_h5(dir.path("range.h5"), [](hid_t file) { // 4 classes of labels, 2 class names
    H5Adelete(file, "class_names");
    h5::write_attr(file, "class_names", std::vector<std::string>{"a", "b"});
  });
  truncate_to_half(good_data, dir.path("cut.h5"));
  write_bytes(dir.path("text.h5"), {'n', 'o', 't', ' ', 'h', 'd', 'f', '5'});
  // --- checkpoint files ---
  const std::string missing = copy_checkpoint("missing.h5");
  edit_h5(missing, [](hid_t file) { H5Ldelete(file, "params/out.bias", H5P_DEFAULT); });
  const std::string shape = copy_checkpoint("shape.h5");
  edit_h5(shape, [](hid_t file) {
    H5Ldelete(file, "params/fc1.weight", H5P_DEFAULT);
    std::vector<float> nine(9, 0.0f);
    h5::Handle params(H5Gopen2(file, "params", H5P_DEFAULT), H5Gclose);
    h5::write_dataset(params, "fc1.weight", h5::Kind::F32, nine.data(), {3, 3});
  });
  const std::string newer = copy_checkpoint("newer.h5");
  edit_h5(newer, [](hid_t file) {
    H5Adelete(file, "format_version");
    h5::write_attr(file, "format_version", int64_t{99});
  });
  truncate_to_half(good_checkpoint, dir.path("cut-ckpt.h5"));
  // --- config files and output places ---
  std::ofstream(dir.path("bad.toml")) << "lr = \"fast\"\n";
  std::ofstream(dir.path("a-file")) << "x";

  std::vector<BadInput> cases = {
      {"dataset_lengths_differ", train({"--data", dir.path("length.h5")}), "3 images but 2 labels"},
      {"dataset_negative_label", train({"--data", dir.path("negative.h5")}), "negative"},
      {"dataset_label_out_of_range", train({"--data", dir.path("range.h5")}), "label 3"},
      {"dataset_zero_samples", train({"--data", dir.path("zero.h5")}), "zero samples"},
      {"dataset_wrong_dtype", train({"--data", dir.path("float.h5")}), "/images must be uint8"},
      {"dataset_without_labels", train({"--data", dir.path("nolabels.h5")}), "labels"},
      {"dataset_truncated_hdf5", train({"--data", dir.path("cut.h5")}), "cut.h5"},
      {"dataset_not_hdf5", train({"--data", dir.path("text.h5")}), "not an HDF5 file"},
      {"dataset_missing", train({"--data", dir.path("absent.h5")}), "absent.h5: no such file"},
      {"test_set_of_another_shape", train({"--test-data", rgb_data}), "3x8x8"},
      {"checkpoint_missing_tensor", evaluate(missing, good_data), "'out.bias' is missing"},
      {"checkpoint_wrong_shape", evaluate(shape, good_data), "has shape [3,3]"},
      {"checkpoint_newer_format", evaluate(newer, good_data), "format version 99 is newer"},
      {"checkpoint_truncated", evaluate(dir.path("cut-ckpt.h5"), good_data), "cut-ckpt.h5"},
      {"checkpoint_is_a_dataset", evaluate(good_data, good_data), "not a hetrain checkpoint"},
      {"checkpoint_for_other_images", evaluate(good_checkpoint, rgb_data), "3x8x8"},
      {"resume_from_missing_file", train({"--resume", dir.path("nope.h5")}), "nope.h5"},
      {"resume_other_model", train({"--resume", good_checkpoint, "--model", "cnn"}),
       "a checkpoint of model 'mlp', this run trains 'cnn'"},
      {"config_file_malformed", train({"--config", dir.path("bad.toml")}), "--lr = fast"},
      {"config_file_missing", train({"--config", dir.path("none.toml")}), "none.toml"},
      {"checkpoint_dir_unwritable", train({"--checkpoint-dir", dir.path("a-file/ck")}),
       "--checkpoint-dir"},
      {"summary_folder_missing", train({"--summary-json", dir.path("no/such/s.json")}),
       "--summary-json"},
      {"global_batch_not_divisible", train({"--global-batch", "40", "--micro-batch", "16"}),
       "not divisible"},
      {"negative_value", train({"--straggler-timeout", "-1"}), "--straggler-timeout"},
      {"zero_value", train({"--keep-checkpoints", "0"}), "--keep-checkpoints"},
      {"unknown_model", train({"--model", "gpt"}), "'gpt' is not one of"},
      {"unknown_loss_policy", train({"--on-trainer-loss", "pray"}), "--on-trainer-loss"},
  };
  // Host environment: asking for a GPU where LibTorch sees none.
  if (!torch::cuda::is_available())
    cases.push_back({"no_cuda_device", train({"--device", "cuda"}), "no CUDA device"});
  // A full disk: a 16 KiB tmpfs in a private mount namespace where unshare may mount one; else a
  // file-size limit (SIGXFSZ ignored, so write() fails with EFBIG), the same failing write.
  const std::string full = dir.path("full");
  fs::create_directory(full);
  const bool can_mount = std::system("unshare -m true >/dev/null 2>&1") == 0;
  const std::string prefix =
      can_mount ? "unshare -m sh -c 'mount -t tmpfs -o size=16k tmpfs " + full +
                      " && \"$0\" \"$@\"; rc=$?; echo \"left in the full disk: $(find " + full +
                      " -type f | wc -l) files\"; exit $rc' "
                : "sh -c 'trap \"\" XFSZ; ulimit -f 16; exec \"$0\" \"$@\"' ";
  cases.push_back({"full_disk", train({"--checkpoint-dir", full + "/ck"}),
                   can_mount ? "No space left on device" : "File too large", prefix, full});

  ASSERT_GE(cases.size(), 20u);
  const size_t before = dir.files().size();
  for (const BadInput &c : cases) {
    const CommandResult r = run_hetrain(c.args, c.prefix);
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find("hetrain: error: "), std::string::npos) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.phrase), std::string::npos) << c.name << ": " << r.output;
    // One error line; no trace, no core, no second complaint.
    size_t error_lines = 0;
    for (size_t at = r.output.find("error"); at != std::string::npos;
         at = r.output.find("error", at + 1))
      ++error_lines;
    EXPECT_EQ(error_lines, 1u) << c.name << ": " << r.output;
    for (const char *crash : {"terminate called", "Segmentation", "core dumped", "Aborted"})
      EXPECT_EQ(r.output.find(crash), std::string::npos) << c.name << ": " << r.output;
    // No output anywhere: no checkpoint, no summary, no stray temporary.
    EXPECT_EQ(files_under(dir.path("out")), 0u) << c.name;
    EXPECT_FALSE(fs::exists(dir.path("out.json"))) << c.name;
    EXPECT_EQ(dir.files().size(), before + (fs::exists(dir.path("out")) ? 1 : 0)) << c.name;
    if (!c.outputs.empty()) {
      EXPECT_EQ(files_under(c.outputs), 0u) << c.name;
      if (can_mount) {
        EXPECT_NE(r.output.find("left in the full disk: 0 files"), std::string::npos) << r.output;
      }
    }
  }
}

} // namespace
