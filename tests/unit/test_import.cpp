// IDX and CIFAR-10 import: good files round-trip; every malformed file is refused through the
// command line with exit code 2, a message naming the problem, and no output file.
#include "test_util.h"

#include "hetrain/common/error.h"
#include "hetrain/data/dataset.h"
#include "hetrain/data/dataset_file.h"
#include "hetrain/data/image_set.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace hetrain;
using namespace hetrain::testing;

namespace {

constexpr uint32_t kImages = 0x00000803, kLabels = 0x00000801;

std::vector<uint8_t> pixel_payload(size_t n) {
  std::vector<uint8_t> p(n);
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<uint8_t>(i * 7 % 256);
  return p;
}

// 5 images of 3x4 and their labels.
struct IdxPair {
  std::vector<uint8_t> images = idx_bytes(kImages, {5, 3, 4}, pixel_payload(5 * 3 * 4));
  std::vector<uint8_t> labels = idx_bytes(kLabels, {5}, {0, 1, 2, 1, 0});
};

TEST(IdxImport, GzipAndPlainFilesGiveTheSameDataset) {
  TempDir dir;
  IdxPair pair;
  write_gzip(dir.path("img.gz"), pair.images);
  write_gzip(dir.path("lab.gz"), pair.labels);
  write_bytes(dir.path("img.idx"), pair.images);
  write_bytes(dir.path("lab.idx"), pair.labels);

  ImageSet gz = read_idx(dir.path("img.gz"), dir.path("lab.gz"));
  ImageSet plain = read_idx(dir.path("img.idx"), dir.path("lab.idx"));
  EXPECT_EQ(gz.count, 5);
  EXPECT_EQ(gz.height, 3);
  EXPECT_EQ(gz.width, 4);
  EXPECT_EQ(gz.pixels, pixel_payload(60));
  EXPECT_EQ(gz.labels, (std::vector<int32_t>{0, 1, 2, 1, 0}));
  EXPECT_EQ(gz.pixels, plain.pixels);
  EXPECT_EQ(gz.labels, plain.labels);
  EXPECT_EQ(gz.class_names.size(), 3u);

  auto r = run_hetrain({"data", "import-idx", "--images", dir.path("img.gz"), "--labels",
                        dir.path("lab.gz"), "--out", dir.path("out.h5"), "--class-names", "a,b,c"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  DatasetMeta meta = read_dataset_meta(dir.path("out.h5"));
  EXPECT_EQ(meta.count, 5);
  EXPECT_EQ(meta.shape_string(), "1x3x4");
  EXPECT_EQ(meta.class_names, (std::vector<std::string>{"a", "b", "c"}));
  Dataset data(dir.path("out.h5"));
  Batch b = data.get({4, 0});
  EXPECT_EQ(b.targets[0].item<int64_t>(), 0);
  EXPECT_EQ(b.targets[1].item<int64_t>(), 0);
}

struct MalformedCase {
  const char *name;
  std::vector<uint8_t> images, labels;
  bool gzip_images;
  const char *expected; // a phrase the message must contain
};

class MalformedIdx : public ::testing::TestWithParam<int> {};

std::vector<MalformedCase> malformed_cases() {
  IdxPair good;
  std::vector<uint8_t> truncated = good.images;
  truncated.resize(truncated.size() - 10);
  std::vector<uint8_t> trailing = good.images;
  trailing.push_back(42);
  return {
      {"bad_magic", idx_bytes(0x00000804, {5, 3, 4}, pixel_payload(60)), good.labels, false,
       "bad magic number"},
      {"labels_bad_magic", good.images, idx_bytes(0x00000803, {5, 1, 1}, {0, 1, 2, 1, 0}), false,
       "bad magic number"},
      {"truncated", truncated, good.labels, false, "truncated"},
      {"trailing_bytes", trailing, good.labels, false, "unexpected bytes"},
      {"count_mismatch", good.images, idx_bytes(kLabels, {4}, {0, 1, 2, 1}), false,
       "count mismatch"},
      {"zero_width", idx_bytes(kImages, {5, 3, 0}, {}), good.labels, false, "bad image dimensions"},
      {"huge_dimensions", idx_bytes(kImages, {1, 100000, 2}, {}), good.labels, false,
       "bad image dimensions"},
      {"no_images", idx_bytes(kImages, {0, 3, 4}, {}), idx_bytes(kLabels, {0}, {}), false,
       "contains no images"},
      {"empty", {}, good.labels, false, "file is empty"},
      {"header_only_partial", {0, 0, 8}, good.labels, false, "too short"},
      {"not_gzip_named_gz", good.images, good.labels, true, "not gzip"},
  };
}

TEST_P(MalformedIdx, IsRefusedWithExitCode2AndNoOutput) {
  const MalformedCase c = malformed_cases()[static_cast<size_t>(GetParam())];
  TempDir dir;
  // "not gzip named .gz": plain bytes under a .gz name.
  std::string images = dir.path(c.gzip_images ? "images.gz" : "images.idx");
  write_bytes(images, c.images);
  write_bytes(dir.path("labels.idx"), c.labels);
  auto r = run_hetrain({"data", "import-idx", "--images", images, "--labels",
                        dir.path("labels.idx"), "--out", dir.path("out.h5")});
  EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.output;
  EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.name << ": " << r.output;
  EXPECT_NE(r.output.find("hetrain: error:"), std::string::npos) << r.output;
  // One line, no stack trace, and nothing left behind but the inputs.
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path("out.h5"))) << c.name;
  EXPECT_EQ(dir.files().size(), 2u) << c.name;
}

INSTANTIATE_TEST_SUITE_P(AllCases, MalformedIdx,
                         ::testing::Range(0, static_cast<int>(malformed_cases().size())),
                         [](const ::testing::TestParamInfo<int> &info) {
                           return std::string(
                               malformed_cases()[static_cast<size_t>(info.param)].name);
                         });

TEST(IdxImport, TruncatedGzipStreamIsRefused) {
  TempDir dir;
  IdxPair pair;
  write_gzip(dir.path("img.gz"), pair.images);
  auto bytes_size = std::filesystem::file_size(dir.path("img.gz"));
  std::filesystem::resize_file(dir.path("img.gz"), bytes_size - 12);
  write_bytes(dir.path("lab.idx"), pair.labels);
  EXPECT_THROW(read_idx(dir.path("img.gz"), dir.path("lab.idx")), UserError);
}

TEST(IdxImport, MissingFileIsNamed) {
  auto r = run_hetrain({"data", "import-idx", "--images", "/nonexistent/images.gz", "--labels",
                        "/nonexistent/labels.gz", "--out", "/tmp/never-written.h5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/images.gz: no such file"), std::string::npos) << r.output;
}

std::vector<uint8_t> cifar_records(const std::vector<uint8_t> &labels) {
  std::vector<uint8_t> out;
  for (uint8_t label : labels) {
    out.push_back(label);
    for (int i = 0; i < 3072; ++i)
      out.push_back(static_cast<uint8_t>((i + label) % 256));
  }
  return out;
}

TEST(CifarImport, SeveralFilesAreAppendedInOrder) {
  TempDir dir;
  write_bytes(dir.path("b1.bin"), cifar_records({3, 9}));
  write_bytes(dir.path("b2.bin"), cifar_records({0}));
  auto r = run_hetrain({"data", "import-cifar", "--input", dir.path("b1.bin"), dir.path("b2.bin"),
                        "--out", dir.path("c.h5")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  DatasetMeta meta = read_dataset_meta(dir.path("c.h5"));
  EXPECT_EQ(meta.count, 3);
  EXPECT_EQ(meta.shape_string(), "3x32x32");
  EXPECT_EQ(meta.class_names.at(9), "truck");
  Dataset data(dir.path("c.h5"), DataResidency::Memory, Normalization{{0, 0, 0}, {1, 1, 1}});
  Batch b = data.get({0, 1, 2});
  EXPECT_EQ(b.targets[0].item<int64_t>(), 3);
  EXPECT_EQ(b.targets[1].item<int64_t>(), 9);
  EXPECT_EQ(b.targets[2].item<int64_t>(), 0);
  // Pixel 1 of record 1 (label 9) is (1 + 9) / 255 after normalising with mean 0, std 1.
  EXPECT_NEAR(b.inputs[1].flatten()[1].item<float>(), 10.0f / 255.0f, 1e-6);
}

TEST(CifarImport, MalformedFilesAreRefused) {
  TempDir dir;
  std::vector<uint8_t> cut = cifar_records({1, 2});
  cut.pop_back();
  write_bytes(dir.path("cut.bin"), cut);
  write_bytes(dir.path("label.bin"), cifar_records({10}));
  write_bytes(dir.path("empty.bin"), {});
  for (auto [file, phrase] :
       std::vector<std::pair<std::string, std::string>>{{"cut.bin", "not a multiple"},
                                                        {"label.bin", "has label 10"},
                                                        {"empty.bin", "file is empty"}}) {
    auto r =
        run_hetrain({"data", "import-cifar", "--input", dir.path(file), "--out", dir.path("c.h5")});
    EXPECT_EQ(r.exit_code, 2) << file;
    EXPECT_NE(r.output.find(phrase), std::string::npos) << file << ": " << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir.path("c.h5")));
  }
}

} // namespace
