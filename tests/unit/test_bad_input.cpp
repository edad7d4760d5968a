// Every user-facing entry point answers malformed input the same way (issue 5, DESIGN §7): one
// line "hetrain: error: ..." naming the thing and the problem, exit code 2, no crash, and no
// output file left behind. Each case here goes through the binary, as a user would meet it.
// (More of the same: Cli.BadFlagValuesAreRefusedWithExitCode2, MalformedIdx.*, CifarImport.*.)
#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/data/dataset_file.h"

#include "test_util.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/script.h>
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
  std::vector<std::string> args;
  std::string phrase;       // what the one line must say
  std::string prefix = "";  // shell words before the binary (the full-disk case)
  std::string outputs = ""; // a folder that must hold no file afterwards (besides the defaults)
  std::string skip = "";    // why the case does not apply on this host (then it is skipped)
};

class BadInputTest;

// One named case: `make` writes the broken input into the fixture's folder and says how to run it.
struct BadInputCase {
  std::string name; // the test's name: BadInput/BadInputTest.<name>
  std::function<BadInput(BadInputTest &)> make;
};

void PrintTo(const BadInputCase &c, std::ostream *os) { *os << c.name; }

class BadInputTest : public ::testing::TestWithParam<BadInputCase> {
public:
  TempDir dir;
  std::string good_data, rgb_data;
  bool can_mount = false; // set by the full-disk case

  void SetUp() override {
    good_data = write_synthetic_dataset(dir, "good.h5", 64, 4, 8, 1);
    rgb_data = write_synthetic_dataset(dir, "rgb.h5", 16, 4, 8, 2, /*channels=*/3);
  }

  // A real checkpoint of a short run, to break in different ways (made by the cases that need it).
  std::string good_checkpoint() {
    if (good_checkpoint_.empty()) {
      auto r = run_hetrain({"train", "--data", good_data, "--model", "mlp", "--epochs", "1",
                            "--global-batch", "32", "--micro-batch", "16", "--threads", "1",
                            "--checkpoint-dir", dir.path("made")});
      EXPECT_EQ(r.exit_code, 0) << r.output;
      for (const auto &entry : fs::directory_iterator(dir.path("made")))
        good_checkpoint_ = entry.path().string();
      EXPECT_FALSE(good_checkpoint_.empty());
    }
    return good_checkpoint_;
  }

  std::string copy_checkpoint(const std::string &name) {
    fs::copy_file(good_checkpoint(), dir.path(name));
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

private:
  std::string good_checkpoint_;
};

// Each case: refused with one line "hetrain: error: ..." and exit code 2, no crash, no file left.
TEST_P(BadInputTest, Refused) {
  const BadInput c = GetParam().make(*this);
  if (!c.skip.empty())
    GTEST_SKIP() << c.skip;
  ASSERT_FALSE(HasFailure()) << "making the input failed";
  const size_t before = dir.files().size();
  const CommandResult r = run_hetrain(c.args, c.prefix);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("hetrain: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(c.phrase), std::string::npos)
      << "expected '" << c.phrase << "' in " << r.output;
  // One error line; no trace, no core, no second complaint.
  size_t error_lines = 0;
  for (size_t at = r.output.find("error"); at != std::string::npos;
       at = r.output.find("error", at + 1))
    ++error_lines;
  EXPECT_EQ(error_lines, 1u) << r.output;
  for (const char *crash : {"terminate called", "Segmentation", "core dumped", "Aborted"})
    EXPECT_EQ(r.output.find(crash), std::string::npos) << r.output;
  // No output anywhere: no checkpoint, no summary, no stray temporary.
  EXPECT_EQ(files_under(dir.path("out")), 0u);
  EXPECT_FALSE(fs::exists(dir.path("out.json")));
  EXPECT_EQ(dir.files().size(), before + (fs::exists(dir.path("out")) ? 1 : 0)) << r.output;
  if (!c.outputs.empty()) {
    EXPECT_EQ(files_under(c.outputs), 0u);
    if (can_mount) {
      EXPECT_NE(r.output.find("left in the full disk: 0 files"), std::string::npos) << r.output;
    }
  }
}

// The broken files, one helper each.
std::string dataset(BadInputTest &t, const std::string &name, h5::Kind kind,
                    const std::vector<hsize_t> &dims, const std::vector<int32_t> &labels,
                    bool with_labels = true) {
  write_raw_dataset(t.dir.path(name), kind, dims, labels, with_labels);
  return t.dir.path(name);
}

BadInputCase train_case(std::string name,
                        std::function<std::vector<std::string>(BadInputTest &)> extra,
                        std::string phrase) {
  return {std::move(name), [extra, phrase](BadInputTest &t) {
            return BadInput{t.train(extra(t)), phrase};
          }};
}

BadInputCase evaluate_case(std::string name,
                           std::function<std::pair<std::string, std::string>(BadInputTest &)> what,
                           std::string phrase) {
  return {std::move(name), [what, phrase](BadInputTest &t) {
            auto [checkpoint, data] = what(t);
            return BadInput{t.evaluate(checkpoint, data), phrase};
          }};
}

// A checkpoint of the short run with one edit.
std::string edited_checkpoint(BadInputTest &t, const std::string &name,
                              const std::function<void(hid_t)> &edit) {
  const std::string path = t.copy_checkpoint(name);
  edit_h5(path, edit);
  return path;
}

using Args = std::vector<std::string>;

// --- the user's own model (issue 14): TorchScript files made here with torch::jit, so the cases
// need no Python ---

// A TorchScript module with the given parameters and TorchScript source, saved to dir/name.
std::string script_file(BadInputTest &t, const std::string &name,
                        const std::vector<std::pair<std::string, torch::Tensor>> &params,
                        const std::string &source, bool trainable = true) {
  torch::jit::Module m("BadInputModel");
  for (const auto &[param, value] : params)
    m.register_parameter(param, value.clone().set_requires_grad(trainable), false);
  m.define(source);
  m.save(t.dir.path(name));
  return t.dir.path(name);
}
// A linear classifier for the 1x8x8, 4-class good data (64 inputs), with `outputs` outputs.
std::string linear_script(BadInputTest &t, const std::string &name, int64_t outputs = 4,
                          bool trainable = true) {
  return script_file(t, name, {{"weight", torch::zeros({64, outputs})}},
                     "def forward(self, x):\n    return x.flatten(1).matmul(self.weight)\n",
                     trainable);
}
// A float dataset: /inputs float32 [16, 8], /targets float32 [16, 2].
std::string float_dataset(BadInputTest &t) {
  const std::string path = t.dir.path("float.h5");
  std::vector<float> inputs(16 * 8, 0.5f), targets(16 * 2, 1.0f);
  h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  h5::write_dataset(file, "inputs", h5::Kind::F32, inputs.data(), {16, 8});
  h5::write_dataset(file, "targets", h5::Kind::F32, targets.data(), {16, 2});
  h5::write_attr(file, "format", "hetrain-dataset");
  h5::write_attr(file, "format_version", int64_t{1});
  return path;
}
// The archive of a good TorchScript file rewritten with a file format version from the future.
std::string from_newer_pytorch(BadInputTest &t) {
  const std::string good = linear_script(t, "good.pt");
  caffe2::serialize::PyTorchStreamReader reader(good);
  caffe2::serialize::PyTorchStreamWriter writer(t.dir.path("newer.pt"));
  for (const std::string &record : reader.getAllRecords()) {
    if (record == "version" || record == ".data/version")
      continue;
    auto [data, size] = reader.getRecord(record);
    writer.writeRecord(record, data.get(), size);
  }
  writer.setMinVersion(99);
  writer.writeEndOfFile();
  return t.dir.path("newer.pt");
}

// --- the user's own data (issue 15) ---

// A dataset in the general layout: /inputs float32 of `inputs_dims` (zeros), /targets of
// `targets_kind` and `targets_dims` (zeros; none when `targets_dims` is empty), the format
// attributes.
std::string general_dataset(BadInputTest &t, const std::string &name,
                            const std::vector<hsize_t> &inputs_dims, h5::Kind targets_kind,
                            const std::vector<hsize_t> &targets_dims) {
  const std::string path = t.dir.path(name);
  auto zeros = [](const std::vector<hsize_t> &dims, h5::Kind kind) {
    size_t n = h5::kind_size(kind);
    for (hsize_t d : dims)
      n *= d;
    return std::vector<char>(n, 0);
  };
  h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  h5::write_dataset(file, "inputs", h5::Kind::F32, zeros(inputs_dims, h5::Kind::F32).data(),
                    inputs_dims);
  if (!targets_dims.empty())
    h5::write_dataset(file, "targets", targets_kind, zeros(targets_dims, targets_kind).data(),
                      targets_dims);
  h5::write_attr(file, "format", "hetrain-dataset");
  h5::write_attr(file, "format_version", int64_t{1});
  return path;
}
// /inputs float32 [16, 8] and /targets of 16 fixed-length strings ("cat", "dog", ...).
std::string string_targets_dataset(BadInputTest &t) {
  const std::string path = general_dataset(t, "strings.h5", {16, 8}, h5::Kind::F32, {});
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  EXPECT_GE(H5Tset_size(type, 4), 0);
  const hsize_t dims[1] = {16};
  h5::Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  h5::Handle targets(
      H5Dcreate2(file, "targets", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  std::string text;
  for (int i = 0; i < 16; ++i)
    text += i % 2 == 0 ? std::string("cat", 4) : std::string("dog", 4);
  EXPECT_GE(H5Dwrite(targets, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()), 0);
  return path;
}

// train with --synthetic SPEC instead of the good data (no --data).
BadInputCase synthetic_case(std::string name, std::string spec, std::string phrase) {
  return {std::move(name), [spec, phrase](BadInputTest &t) {
            Args args = t.train({"--synthetic", spec});
            const auto data = std::find(args.begin(), args.end(), "--data");
            args.erase(data, data + 2);
            return BadInput{args, phrase};
          }};
}

// `data import-images` on dir/images holding `entries` ("class/file", or "class/" for an empty
// folder, "" for an empty dir/images; none: no dir/images at all), writing dir/out.h5.
BadInputCase image_folder_case(std::string name, std::vector<std::string> entries,
                               std::string phrase, std::vector<std::string> extra = {}) {
  return {std::move(name), [entries, phrase, extra](BadInputTest &t) {
            const fs::path root = t.dir.path("images");
            for (const std::string &entry : entries) {
              fs::create_directories(root / fs::path(entry).parent_path());
              if (!entry.empty() && entry.back() != '/')
                std::ofstream(root / entry) << "listed, never decoded";
            }
            if (!entries.empty())
              fs::create_directories(root);
            Args args = {"data", "import-images", root.string(), "--out", t.dir.path("out.h5")};
            if (extra.empty())
              args.insert(args.end(), {"--size", "8x8"});
            args.insert(args.end(), extra.begin(), extra.end());
            // A build without OpenCV refuses the command itself, before it looks at anything.
            return BadInput{args, HETRAIN_HAVE_OPENCV ? phrase : "built without OpenCV"};
          }};
}

const std::vector<BadInputCase> kCases = {
    // --- dataset files ---
    train_case(
        "DatasetLengthsDiffer",
        [](BadInputTest &t) {
          return Args{"--data", dataset(t, "length.h5", h5::Kind::U8, {3, 1, 2, 2}, {0, 1})};
        },
        "3 samples in /images but 2 in /labels"),
    train_case(
        "DatasetNegativeLabel",
        [](BadInputTest &t) {
          return Args{"--data", dataset(t, "negative.h5", h5::Kind::U8, {2, 1, 2, 2}, {0, -1})};
        },
        "negative"),
    train_case(
        "DatasetLabelOutOfRange",
        [](BadInputTest &t) {
          fs::copy_file(t.good_data, t.dir.path("range.h5"));
          edit_h5(t.dir.path("range.h5"), [](hid_t file) { // 4 classes of labels, 2 names
            H5Adelete(file, "class_names");
            h5::write_attr(file, "class_names", std::vector<std::string>{"a", "b"});
          });
          return Args{"--data", t.dir.path("range.h5")};
        },
        "label 3"),
    train_case(
        "DatasetZeroSamples",
        [](BadInputTest &t) {
          return Args{"--data", dataset(t, "zero.h5", h5::Kind::U8, {0, 1, 2, 2}, {})};
        },
        "zero samples"),
    train_case(
        "DatasetWrongDtype",
        [](BadInputTest &t) {
          return Args{"--data", dataset(t, "float.h5", h5::Kind::F64, {2, 1, 2, 2}, {0, 1})};
        },
        "/images must be uint8"),
    train_case(
        "DatasetWithoutLabels",
        [](BadInputTest &t) {
          return Args{"--data", dataset(t, "nolabels.h5", h5::Kind::U8, {2, 1, 2, 2}, {},
                                        /*with_labels=*/false)};
        },
        "labels"),
    train_case(
        "DatasetTruncatedHdf5",
        [](BadInputTest &t) {
          truncate_to_half(t.good_data, t.dir.path("cut.h5"));
          return Args{"--data", t.dir.path("cut.h5")};
        },
        "cut.h5"),
    train_case(
        "DatasetNotHdf5",
        [](BadInputTest &t) {
          write_bytes(t.dir.path("text.h5"), {'n', 'o', 't', ' ', 'h', 'd', 'f', '5'});
          return Args{"--data", t.dir.path("text.h5")};
        },
        "not an HDF5 file"),
    train_case(
        "MissingDataFile",
        [](BadInputTest &t) {
          return Args{"--data", t.dir.path("absent.h5")};
        },
        "absent.h5: no such file"),
    train_case(
        "TestSetOfAnotherShape",
        [](BadInputTest &t) {
          return Args{"--test-data", t.rgb_data};
        },
        "3x8x8"),
    // --- checkpoint files ---
    evaluate_case(
        "CheckpointMissingTensor",
        [](BadInputTest &t) {
          return std::make_pair(edited_checkpoint(t, "missing.h5",
                                                  [](hid_t file) {
                                                    H5Ldelete(file, "params/out.bias", H5P_DEFAULT);
                                                  }),
                                t.good_data);
        },
        "'out.bias' is missing"),
    evaluate_case(
        "CheckpointWrongShape",
        [](BadInputTest &t) {
          return std::make_pair(
              edited_checkpoint(
                  t, "shape.h5",
                  [](hid_t file) {
                    H5Ldelete(file, "params/fc1.weight", H5P_DEFAULT);
                    std::vector<float> nine(9, 0.0f);
                    h5::Handle params(H5Gopen2(file, "params", H5P_DEFAULT), H5Gclose);
                    h5::write_dataset(params, "fc1.weight", h5::Kind::F32, nine.data(), {3, 3});
                  }),
              t.good_data);
        },
        "has shape [3,3]"),
    evaluate_case(
        "CheckpointNewerFormat",
        [](BadInputTest &t) {
          return std::make_pair(edited_checkpoint(t, "newer.h5",
                                                  [](hid_t file) {
                                                    H5Adelete(file, "format_version");
                                                    h5::write_attr(file, "format_version",
                                                                   int64_t{99});
                                                  }),
                                t.good_data);
        },
        "format version 99 is newer"),
    evaluate_case(
        "CheckpointTruncated",
        [](BadInputTest &t) {
          truncate_to_half(t.good_checkpoint(), t.dir.path("cut-ckpt.h5"));
          return std::make_pair(t.dir.path("cut-ckpt.h5"), t.good_data);
        },
        "cut-ckpt.h5"),
    evaluate_case(
        "CheckpointIsADataset",
        [](BadInputTest &t) { return std::make_pair(t.good_data, t.good_data); },
        "not a hetrain checkpoint"),
    evaluate_case(
        "CheckpointForOtherImages",
        [](BadInputTest &t) { return std::make_pair(t.good_checkpoint(), t.rgb_data); }, "3x8x8"),
    train_case(
        "ResumeFromMissingFile",
        [](BadInputTest &t) {
          return Args{"--resume", t.dir.path("nope.h5")};
        },
        "nope.h5"),
    train_case(
        "ResumeOtherModel",
        [](BadInputTest &t) {
          return Args{"--resume", t.good_checkpoint(), "--model", "cnn"};
        },
        "this run trains 'cnn' (fingerprint"),
    // --- config files and output places ---
    train_case(
        "ConfigFileMalformed",
        [](BadInputTest &t) {
          std::ofstream(t.dir.path("bad.toml")) << "lr = \"fast\"\n";
          return Args{"--config", t.dir.path("bad.toml")};
        },
        "--lr = fast"),
    train_case(
        "ConfigFileMissing",
        [](BadInputTest &t) {
          return Args{"--config", t.dir.path("none.toml")};
        },
        "none.toml"),
    train_case(
        "CheckpointDirUnwritable",
        [](BadInputTest &t) {
          std::ofstream(t.dir.path("a-file")) << "x";
          return Args{"--checkpoint-dir", t.dir.path("a-file/ck")};
        },
        "--checkpoint-dir"),
    train_case(
        "SummaryFolderMissing",
        [](BadInputTest &t) {
          return Args{"--summary-json", t.dir.path("no/such/s.json")};
        },
        "--summary-json"),
    train_case(
        "GlobalBatchNotDivisible",
        [](BadInputTest &) {
          return Args{"--global-batch", "40", "--micro-batch", "16"};
        },
        "not divisible"),
    train_case(
        "NegativeValue",
        [](BadInputTest &) {
          return Args{"--straggler-timeout", "-1"};
        },
        "--straggler-timeout"),
    train_case(
        "ZeroValue",
        [](BadInputTest &) {
          return Args{"--keep-checkpoints", "0"};
        },
        "--keep-checkpoints"),
    train_case(
        "UnknownModel",
        [](BadInputTest &) {
          return Args{"--model", "gpt"};
        },
        "--model gpt: no such file"),
    train_case(
        "UnknownLossPolicy",
        [](BadInputTest &) {
          return Args{"--on-trainer-loss", "pray"};
        },
        "--on-trainer-loss"),
    train_case(
        "HostReduceWithParams",
        [](BadInputTest &) {
          return Args{"--host-reduce", "on", "--sync", "params"};
        },
        "--host-reduce on needs --sync gradient"),
    train_case(
        "HostReduceWithContinue",
        [](BadInputTest &) {
          return Args{"--host-reduce", "on", "--on-trainer-loss", "continue"};
        },
        "--host-reduce on needs --on-trainer-loss abort"),
    train_case(
        "HostReduceUnknown",
        [](BadInputTest &) {
          return Args{"--host-reduce", "sometimes"};
        },
        "--host-reduce"),
    // --- the host ---
    // Asking for a GPU where LibTorch sees none (skipped, with the reason, where it sees one).
    {"NoCudaDevice",
     [](BadInputTest &t) {
       BadInput c{t.train({"--device", "cuda"}), "no CUDA device"};
       if (torch::cuda::is_available())
         c.skip = "LibTorch sees a CUDA device here, so --device cuda is not bad input";
       return c;
     }},
    // A full disk: a 16 KiB tmpfs in a private mount namespace where unshare may mount one; else a
    // file-size limit (SIGXFSZ ignored, so write() fails with EFBIG), the same failing write.
    {"FullDisk",
     [](BadInputTest &t) {
       const std::string full = t.dir.path("full");
       fs::create_directory(full);
       t.can_mount = std::system("unshare -m true >/dev/null 2>&1") == 0;
       const std::string prefix =
           t.can_mount ? "unshare -m sh -c 'mount -t tmpfs -o size=16k tmpfs " + full +
                             " && \"$0\" \"$@\"; rc=$?; echo \"left in the full disk: $(find " +
                             full + " -type f | wc -l) files\"; exit $rc' "
                       : "sh -c 'trap \"\" XFSZ; ulimit -f 16; exec \"$0\" \"$@\"' ";
       return BadInput{t.train({"--checkpoint-dir", full + "/ck"}),
                       t.can_mount ? "No space left on device" : "File too large", prefix, full};
     }},
    // --- the user's own model (issue 14) ---
    train_case(
        "ModelFileIsNotTorchScript",
        [](BadInputTest &t) {
          std::ofstream(t.dir.path("weights.pt")) << "not a zip archive";
          return Args{"--model", t.dir.path("weights.pt")};
        },
        "not a TorchScript file"),
    train_case(
        "ModelSavedWithTorchSaveIsNotTorchScript",
        [](BadInputTest &t) {
          torch::save(torch::zeros({3}), t.dir.path("tensor.pt")); // a zip, but no module in it
          return Args{"--model", t.dir.path("tensor.pt")};
        },
        "holds no TorchScript module with a forward method"),
    train_case(
        "ModelFromNewerPyTorch",
        [](BadInputTest &t) {
          return Args{"--model", from_newer_pytorch(t)};
        },
        "saved by a newer PyTorch"),
    train_case(
        "ModelFileDamaged",
        [](BadInputTest &t) {
          // One flipped bit in the pickled module: LibTorch would misread it; the CRC-32 says so.
          const std::string path = linear_script(t, "damaged.pt");
          const auto at = static_cast<std::streamoff>(
              caffe2::serialize::PyTorchStreamReader(path).getRecordOffset("data.pkl") + 2);
          std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
          f.seekg(at);
          const char c = static_cast<char>(f.get());
          f.seekp(at);
          f.put(static_cast<char>(c ^ 0x20));
          return Args{"--model", path};
        },
        "fails its CRC-32 check"),
    train_case(
        "ModelWithoutTrainableParameters",
        [](BadInputTest &t) {
          return Args{"--model", linear_script(t, "frozen.pt", 4, /*trainable=*/false)};
        },
        "has no trainable parameters (1 frozen)"),
    train_case(
        "ModelForwardFailsOnTheDataShape",
        [](BadInputTest &t) {
          return Args{"--model",
                      script_file(t, "wide.pt", {{"weight", torch::zeros({100, 4})}},
                                  "def forward(self, x):\n"
                                  "    return x.reshape(-1, 100).matmul(self.weight)\n")};
        },
        "fails on a batch of the dataset's shape [2, 1, 8, 8] with targets [2]"),
    train_case(
        "ModelOutputsAnotherClassCount",
        [](BadInputTest &t) {
          return Args{"--model", linear_script(t, "three.pt", 3)};
        },
        "gives 3 outputs per sample, the dataset has 4 classes"),
    train_case(
        "LossModelWithoutLossMethod",
        [](BadInputTest &t) {
          return Args{"--model", linear_script(t, "noloss.pt"), "--loss", "model"};
        },
        "--loss model needs a loss(outputs, targets) method"),
    train_case(
        "MseOutputsDoNotFitTheTargets",
        [](BadInputTest &t) {
          return Args{"--data",
                      float_dataset(t),
                      "--loss",
                      "mse",
                      "--model",
                      script_file(t, "three_out.pt", {{"weight", torch::zeros({8, 3})}},
                                  "def forward(self, x):\n    return x.matmul(self.weight)\n")};
        },
        "--loss mse needs outputs of the targets' shape [2, 2]; the model gives [2, 3]"),
    train_case(
        "CrossEntropyOnFloatTargets",
        [](BadInputTest &t) {
          return Args{"--data", float_dataset(t), "--model", "mlp"};
        },
        "--loss cross-entropy needs integer class labels"),
    train_case(
        "LabelSmoothingWithMse",
        [](BadInputTest &) {
          return Args{"--loss", "mse", "--label-smoothing", "0.1"};
        },
        "--label-smoothing: only with --loss cross-entropy"),
    train_case(
        "PluginMissing",
        [](BadInputTest &t) {
          return Args{"--model-plugin", t.dir.path("missing.so")};
        },
        "missing.so: cannot load it"),
    train_case(
        "PluginWithoutFactory",
        [](BadInputTest &) {
          return Args{"--model-plugin", HETRAIN_NOT_A_PLUGIN};
        },
        "not a hetrain model plugin (it has no hetrain_model_plugin function"),
    train_case(
        "PluginUnknownModelName",
        [](BadInputTest &) {
          return Args{"--model-plugin", std::string(HETRAIN_EXAMPLE_PLUGIN) + ":resnet999"};
        },
        "has no model 'resnet999' (it has: tiny_cnn, linear_mse)"),
    train_case(
        "ResumeWithAnotherModelFile",
        [](BadInputTest &t) {
          const std::string first = linear_script(t, "first.pt");
          auto r = run_hetrain({"train", "--data", t.good_data, "--model", first, "--epochs", "1",
                                "--global-batch", "32", "--micro-batch", "16", "--threads", "1",
                                "--checkpoint-dir", t.dir.path("scripted")});
          EXPECT_EQ(r.exit_code, 0) << r.output;
          std::string checkpoint;
          for (const auto &entry : fs::directory_iterator(t.dir.path("scripted")))
            checkpoint = entry.path().string();
          const std::string other = script_file(
              t, "other.pt", {{"weight", torch::zeros({64, 4})}},
              "def forward(self, x):\n    return x.flatten(1).matmul(self.weight) * 2\n");
          return Args{"--resume", checkpoint, "--model", other};
        },
        "another model"),
    // --- the user's own data (issue 15) ---
    train_case(
        "InputsWithoutTargets",
        [](BadInputTest &t) {
          return Args{"--data", general_dataset(t, "no-targets.h5", {16, 8}, h5::Kind::F32, {}),
                      "--loss", "mse"};
        },
        "dataset 'targets' is missing"),
    train_case(
        "InputsAndTargetsLengthsDiffer",
        [](BadInputTest &t) {
          return Args{"--data", general_dataset(t, "lengths.h5", {16, 8}, h5::Kind::F32, {12, 2}),
                      "--loss", "mse"};
        },
        "16 samples in /inputs but 12 in /targets"),
    train_case(
        "IntegerTargetsOfTwoDimensions",
        [](BadInputTest &t) {
          return Args{"--data",
                      general_dataset(t, "labels-2d.h5", {16, 8}, h5::Kind::I32, {16, 2})};
        },
        "/targets must be one-dimensional (one class label per sample)"),
    train_case(
        "StringTargets",
        [](BadInputTest &t) {
          return Args{"--data", string_targets_dataset(t)};
        },
        "/targets must be integers (class labels) or float"),
    train_case(
        "AugmentCropPaddingOverHalfTheImage",
        [](BadInputTest &) { // the good data's images are 8x8: padding 4 is the most allowed
          return Args{"--augment", "crop:5"};
        },
        "--augment crop:5: a padding of 5 is more than half the 8x8 image"),
    train_case(
        "AugmentFeatures",
        [](BadInputTest &t) { // "--augment needs images; DIR/float.h5 holds feature vectors of 8"
          return Args{"--data", float_dataset(t), "--loss", "mse", "--augment", "flip"};
        },
        "float.h5 holds feature vectors of 8"),
    train_case(
        "AugmentUnknownName",
        [](BadInputTest &) {
          return Args{"--augment", "crop,rotate"};
        },
        "--augment: unknown augmentation 'rotate'"),
    synthetic_case("SyntheticMalformed", "8:4:64", "--synthetic 8:4:64: expected CxHxW:CLASSES:N"),
    synthetic_case("SyntheticOneClass", "1x8x8:1:64", "at least 2 classes"),
    train_case(
        "SyntheticAndData",
        [](BadInputTest &) {
          return Args{"--synthetic", "1x8x8:4:64"}; // and the good data's --data
        },
        "--data and --synthetic: give one of them"),
    // --- data import-images (issue 15): the folder is refused while it is listed, before any
    // image is decoded, so the image files here need no real content ---
    image_folder_case("ImageFolderMissing", {}, "images: no such folder"),
    image_folder_case("ImageFolderEmpty", {""}, "no class subfolders"),
    image_folder_case("ImageFolderWithoutImages", {"cat/notes.txt", "dog/"}, "no images"),
    image_folder_case("ImageFolderOneClass", {"cat/a.png", "cat/b.jpg"},
                      "needs at least 2 classes (one subfolder per class); it has only 'cat'"),
    image_folder_case("ImageFolderEmptyClass", {"cat/a.png", "dog/", "frog/c.bmp"},
                      "class folder 'dog' has no images"),
    image_folder_case("ImageFolderBadSize", {"cat/a.png", "dog/b.png"}, "--size '8x0'",
                      {"--size", "8x0"}),
};

INSTANTIATE_TEST_SUITE_P(BadInput, BadInputTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<BadInputCase> &info) {
                           return info.param.name;
                         });

} // namespace
