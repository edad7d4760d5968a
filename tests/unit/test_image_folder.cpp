// `hetrain data import-images` (issue 15): a folder of class subfolders, made here with OpenCV
// (PNG, JPEG and BMP of several sizes), imported through the binary as a user would: the dataset
// it writes, its pixels against OpenCV's own decode and resize, training on it, corrupt and
// truncated images (named, exit 2, no output; or skipped and counted), the validation split and
// the independence of the thread count.
#include "test_util.h"

#include "hetrain/common/error.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/data/dataset_file.h"
#include "hetrain/data/image_folder.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

using namespace hetrain;
using namespace hetrain::testing;
namespace fs = std::filesystem;

namespace {

constexpr int kSide = 24; // the imported size: the images below shrink, grow, or both

// One image: class `label`'s colour plus noise, so that the classes can be told apart.
cv::Mat make_image(int rows, int cols, int label, uint64_t seed) {
  cv::RNG rng(seed);
  cv::Mat image(rows, cols, CV_8UC3);
  rng.fill(image, cv::RNG::UNIFORM, 0, 96);
  image += cv::Scalar(label == 0 ? 150 : 0, label == 1 ? 150 : 0, label == 2 ? 150 : 0);
  return image;
}

// cat, dog, frog; each: a.png 40x30, b.jpg 20x25, c.png 16x16, d.bmp 50x50, e.JPEG 24x24 in a
// subfolder; plus two files that are not images.
struct ImageFolder {
  TempDir dir;
  std::string root = dir.path("images");
  static constexpr int kPerClass = 5;
  const std::vector<std::string> classes = {"cat", "dog", "frog"};

  ImageFolder() {
    uint64_t seed = 1;
    for (int c = 0; c < 3; ++c) {
      const fs::path folder = fs::path(root) / classes[c];
      fs::create_directories(folder / "more");
      EXPECT_TRUE(cv::imwrite((folder / "a.png").string(), make_image(40, 30, c, seed++)));
      EXPECT_TRUE(cv::imwrite((folder / "b.jpg").string(), make_image(20, 25, c, seed++)));
      EXPECT_TRUE(cv::imwrite((folder / "c.png").string(), make_image(16, 16, c, seed++)));
      EXPECT_TRUE(cv::imwrite((folder / "d.bmp").string(), make_image(50, 50, c, seed++)));
      // OpenCV picks the encoder by extension, case-insensitively.
      EXPECT_TRUE(
          cv::imwrite((folder / "more" / "e.JPEG").string(), make_image(24, 24, c, seed++)));
    }
    std::ofstream(fs::path(root) / "README.txt") << "not an image\n";
    std::ofstream(fs::path(root) / "dog" / "notes.txt") << "not an image either\n";
  }
  std::string path(const std::string &relative) const {
    return (fs::path(root) / relative).string();
  }
  std::string out(const std::string &name) const { return dir.path(name); }
  CommandResult import(const std::string &out_name, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"data",  "import-images", root,         "--size",
                                     "24x24", "--out",         out(out_name)};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_hetrain(args);
  }
  // No output file and no temporary beside where it would have been.
  bool no_outputs() const {
    for (const std::string &name : dir.files())
      if (name != "images")
        return false;
    return true;
  }
};

struct Contents {
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
  std::vector<hsize_t> dims;
};

Contents read_contents(const std::string &path) {
  h5::Handle file = h5::open_file_readonly(path);
  h5::Handle images = h5::open_dataset(file, "images", path);
  h5::Handle labels = h5::open_dataset(file, "labels", path);
  Contents c;
  c.dims = h5::dataset_shape(images).dims;
  c.images.resize(h5::dataset_shape(images).elements());
  c.labels.resize(h5::dataset_shape(labels).elements());
  h5::read_dataset(images, h5::Kind::U8, c.images.data());
  h5::read_dataset(labels, h5::Kind::I32, c.labels.data());
  return c;
}

// What the import should hold for one file: OpenCV's decode and resize, as [C, H, W] RGB.
std::vector<uint8_t> expected_pixels(const std::string &file, int channels) {
  cv::Mat image = cv::imread(file, channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  const bool grows = image.rows < kSide || image.cols < kSide;
  cv::Mat resized;
  cv::resize(image, resized, cv::Size(kSide, kSide), 0, 0,
             grows ? cv::INTER_LINEAR : cv::INTER_AREA);
  std::vector<uint8_t> chw(static_cast<size_t>(channels * kSide * kSide));
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x)
      for (int c = 0; c < channels; ++c)
        chw[static_cast<size_t>((c * kSide + y) * kSide + x)] =
            channels == 1 ? resized.at<uint8_t>(y, x) : resized.at<cv::Vec3b>(y, x)[2 - c];
  return chw;
}

std::vector<uint8_t> sample(const Contents &c, size_t index) {
  const size_t bytes = c.images.size() / c.labels.size();
  return {c.images.begin() + static_cast<std::ptrdiff_t>(index * bytes),
          c.images.begin() + static_cast<std::ptrdiff_t>((index + 1) * bytes)};
}

void write_prefix(const std::string &from, const std::string &to, double fraction) {
  std::ifstream in(from, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(to, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size() * fraction));
}

TEST(ImageFolder, ImportsTheFolderAndDataInfoDescribesIt) {
  ImageFolder f;
  auto r = f.import("out.h5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + f.out("out.h5") +
                          ": 15 samples of 3x24x24, 3 classes (0 skipped, 2 ignored)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("import-images: 100% (15 of 15 images"), std::string::npos) << r.output;

  auto info = run_hetrain({"data", "info", f.out("out.h5")});
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("15 samples of 3x24x24 (uint8), 3 classes"), std::string::npos)
      << info.output;
  EXPECT_NE(info.output.find("classes: cat, dog, frog"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("source: image-folder:images"), std::string::npos) << info.output;

  const DatasetMeta meta = read_dataset_meta(f.out("out.h5"));
  EXPECT_EQ(meta.count, 15);
  EXPECT_EQ(meta.class_names, f.classes);
  const Contents c = read_contents(f.out("out.h5"));
  // Classes in name order, each class's files in order of their relative paths.
  EXPECT_EQ(c.labels, (std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2}));
  EXPECT_EQ(c.dims, (std::vector<hsize_t>{15, 3, 24, 24}));
}

TEST(ImageFolder, PixelsAreOpenCvsDecodeAndResize) {
  ImageFolder f;
  ASSERT_EQ(f.import("rgb.h5").exit_code, 0);
  ASSERT_EQ(f.import("gray.h5", {"--channels", "1"}).exit_code, 0);
  const Contents rgb = read_contents(f.out("rgb.h5")), gray = read_contents(f.out("gray.h5"));
  EXPECT_EQ(gray.dims, (std::vector<hsize_t>{15, 1, 24, 24}));
  // dog's files in order: a.png (shrinks), b.jpg (grows in height), c.png (grows), d.bmp,
  // more/e.JPEG (already 24x24).
  const std::vector<std::string> dog = {"dog/a.png", "dog/b.jpg", "dog/c.png", "dog/d.bmp",
                                        "dog/more/e.JPEG"};
  for (size_t i = 0; i < dog.size(); ++i) {
    SCOPED_TRACE(dog[i]);
    EXPECT_EQ(sample(rgb, 5 + i), expected_pixels(f.path(dog[i]), 3));
    EXPECT_EQ(sample(gray, 5 + i), expected_pixels(f.path(dog[i]), 1));
  }
  // RGB order: dog's images are green, so channel 1 is the brightest.
  const std::vector<uint8_t> first = sample(rgb, 5);
  const auto plane = static_cast<std::ptrdiff_t>(24 * 24);
  auto sum = [&](int channel) {
    int64_t s = 0;
    for (auto it = first.begin() + channel * plane; it != first.begin() + (channel + 1) * plane;
         ++it)
      s += *it;
    return s;
  };
  EXPECT_GT(sum(1), sum(0) + 100 * plane);
  EXPECT_GT(sum(1), sum(2) + 100 * plane);
}

TEST(ImageFolder, TrainingOnTheImportWorks) {
  ImageFolder f;
  ASSERT_EQ(f.import("train.h5", {"--val-fraction", "0.2"}).exit_code, 0);
  auto r = run_hetrain({"train", "--data", f.out("train.h5"), "--test-data", f.out("train-val.h5"),
                        "--model", "mlp", "--epochs", "2", "--global-batch", "4", "--micro-batch",
                        "2", "--threads", "1", "--checkpoint-dir", f.out("ckpt")});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(ImageFolder, ACorruptJpegIsNamedAndNothingIsWritten) {
  ImageFolder f;
  std::ofstream random(f.path("dog/bad.jpg"), std::ios::binary);
  for (int i = 0; i < 500; ++i)
    random.put(static_cast<char>(i * 37 + 11));
  random.close();
  auto r = f.import("out.h5", {"--val-fraction", "0.2"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(
      r.output.find("hetrain: error: " + f.path("dog/bad.jpg") + ": not a JPEG, PNG or BMP file"),
      std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--skip-bad-images"), std::string::npos) << r.output;
  EXPECT_TRUE(f.no_outputs()) << r.output;
}

TEST(ImageFolder, ATruncatedPngIsNamedAndNothingIsWritten) {
  ImageFolder f;
  write_prefix(f.path("frog/a.png"), f.path("frog/cut.png"), 0.5);
  auto r = f.import("out.h5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("hetrain: error: " + f.path("frog/cut.png") +
                          ": OpenCV cannot decode it (corrupt or truncated PNG)"),
            std::string::npos)
      << r.output;
  // libpng's own complaint ("libpng error: ...") is not shown: one error line, ours.
  EXPECT_EQ(r.output.find("error"), r.output.rfind("error")) << r.output;
  EXPECT_TRUE(f.no_outputs()) << r.output;
}

// libjpeg decodes a cut-off JPEG with the missing part grey and a warning; the import refuses it.
TEST(ImageFolder, ATruncatedJpegIsNamed) {
  ImageFolder f;
  write_prefix(f.path("cat/b.jpg"), f.path("cat/cut.jpg"), 0.7);
  auto r = f.import("out.h5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(f.path("cat/cut.jpg") + ": truncated JPEG"), std::string::npos)
      << r.output;
  EXPECT_TRUE(f.no_outputs()) << r.output;
}

TEST(ImageFolder, SkipBadImagesListsAndCountsThem) {
  ImageFolder f;
  std::ofstream(f.path("dog/bad.jpg"), std::ios::binary) << "definitely not a jpeg";
  write_prefix(f.path("frog/a.png"), f.path("frog/cut.png"), 0.5);
  std::ofstream(f.path("cat/empty.png"), std::ios::binary).close();
  auto r = f.import("out.h5", {"--skip-bad-images"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto &[file, why] : std::vector<std::pair<std::string, std::string>>{
           {"cat/empty.png", "file is empty"},
           {"dog/bad.jpg", "not a JPEG, PNG or BMP file"},
           {"frog/cut.png", "OpenCV cannot decode it (corrupt or truncated PNG)"}})
    EXPECT_NE(r.output.find("hetrain: warning: skipped " + f.path(file) + ": " + why),
              std::string::npos)
        << r.output;
  EXPECT_EQ(r.output.find("error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("15 samples of 3x24x24, 3 classes (3 skipped, 2 ignored)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_dataset_meta(f.out("out.h5")).count, 15);
}

TEST(ImageFolder, ValidationSplitIsDeterministicDisjointAndKeepsEveryClass) {
  ImageFolder f;
  auto first = f.import("a.h5", {"--val-fraction", "0.3"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = f.import("b.h5", {"--val-fraction", "0.3", "--val-out", f.out("b-validation.h5")});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(first.output.find("; wrote " + f.out("a-val.h5") + ": 6 samples of 3x24x24, 3 classes"),
            std::string::npos)
      << first.output;

  const Contents train_a = read_contents(f.out("a.h5")), val_a = read_contents(f.out("a-val.h5"));
  const Contents train_b = read_contents(f.out("b.h5")),
                 val_b = read_contents(f.out("b-validation.h5"));
  EXPECT_EQ(train_a.images, train_b.images);
  EXPECT_EQ(train_a.labels, train_b.labels);
  EXPECT_EQ(val_a.images, val_b.images);
  EXPECT_EQ(val_a.labels, val_b.labels);
  // round(0.3 * 5) = 2 of each class's 5 images go to validation.
  EXPECT_EQ(train_a.labels, (std::vector<int32_t>{0, 0, 0, 1, 1, 1, 2, 2, 2}));
  EXPECT_EQ(val_a.labels, (std::vector<int32_t>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(read_dataset_meta(f.out("a-val.h5")).class_names, f.classes);
  // Disjoint, and together the whole folder: the images of the import without a split.
  ASSERT_EQ(f.import("all.h5").exit_code, 0);
  const Contents all = read_contents(f.out("all.h5"));
  std::multiset<std::vector<uint8_t>> whole, parts;
  for (size_t i = 0; i < all.labels.size(); ++i)
    whole.insert(sample(all, i));
  for (size_t i = 0; i < train_a.labels.size(); ++i)
    parts.insert(sample(train_a, i));
  for (size_t i = 0; i < val_a.labels.size(); ++i)
    parts.insert(sample(val_a, i));
  EXPECT_EQ(whole, parts);
  EXPECT_EQ(whole.size(), 15u);
  EXPECT_EQ(std::set<std::vector<uint8_t>>(whole.begin(), whole.end()).size(), 15u);
}

TEST(ImageFolder, OneThreadAndTwoThreadsWriteTheSameFile) {
  ImageFolder f;
  ASSERT_EQ(f.import("one.h5", {"--threads", "1", "--val-fraction", "0.2"}).exit_code, 0);
  ASSERT_EQ(f.import("two.h5", {"--threads", "2", "--val-fraction", "0.2"}).exit_code, 0);
  for (const char *suffix : {".h5", "-val.h5"}) {
    const Contents one = read_contents(f.out(std::string("one") + suffix));
    const Contents two = read_contents(f.out(std::string("two") + suffix));
    EXPECT_EQ(one.images, two.images) << suffix;
    EXPECT_EQ(one.labels, two.labels) << suffix;
  }
}

TEST(ImageFolder, BadOptionsAreRefusedBeforeAnyDecoding) {
  ImageFolder f;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--size", "24"}, "--size '24': expected HxW"},
      {{"--size", "0x24"}, "--size '0x24': expected HxW"},
      {{"--size", "24x24x3"}, "--size '24x24x3': expected HxW"},
      {{"--channels", "2"}, "--channels 2: must be 1 (grayscale) or 3 (RGB)"},
      {{"--val-fraction", "1"}, "--val-fraction 1: must be at least 0 and below 1"},
      {{"--val-fraction", "-0.1"}, "--val-fraction -0.1: must be at least 0 and below 1"},
      {{"--val-out", f.out("v.h5")}, "--val-out: only with --val-fraction"},
      {{"--val-fraction", "0.2", "--val-out", f.out("out.h5")},
       "--val-out " + f.out("out.h5") + ": the same file as --out"},
      {{"--threads", "-1"}, "--threads -1"},
  };
  for (const auto &[extra, phrase] : cases) {
    std::vector<std::string> args = {"data", "import-images", f.root, "--out", f.out("out.h5")};
    if (std::find(extra.begin(), extra.end(), "--size") == extra.end())
      args.insert(args.end(), {"--size", "24x24"});
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_hetrain(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("hetrain: error: " + phrase), std::string::npos) << r.output;
    EXPECT_TRUE(f.no_outputs()) << r.output;
  }
}

TEST(ImageFolder, SizesAndDefaultValidationNames) {
  int64_t h = 0, w = 0;
  parse_image_size("32x48", h, w);
  EXPECT_EQ(h, 32);
  EXPECT_EQ(w, 48);
  parse_image_size("224X224", h, w);
  EXPECT_EQ(h, 224);
  for (const char *bad : {"", "x", "32x", "x32", "32*32", "-1x2", "4097x1", "1e2x3", "12x12 "})
    EXPECT_THROW(parse_image_size(bad, h, w), UserError) << bad;
  EXPECT_EQ(default_val_path("data/train.h5"), "data/train-val.h5");
  EXPECT_EQ(default_val_path("train"), "train-val.h5");
  EXPECT_EQ(default_val_path("a.b/train.hdf5"), "a.b/train-val.hdf5");
}

} // namespace
