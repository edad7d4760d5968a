// Dataset files: write -> read round trip, in-memory and hyperslab reads agree, the layout is
// validated, and the epoch permutation is a deterministic permutation.
#include "test_util.h"

#include "hetrain/common/error.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/data/dataset.h"
#include "hetrain/data/dataset_file.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

using namespace hetrain;
using namespace hetrain::testing;

namespace {

TEST(DatasetFile, RoundTripKeepsPixelsLabelsAndStatistics) {
  TempDir dir;
  ImageSet set = synthetic_images(37, 3, 6, 7, /*channels=*/2);
  write_dataset_file(dir.path("d.h5"), set);
  DatasetMeta meta = read_dataset_meta(dir.path("d.h5"));
  EXPECT_EQ(meta.count, 37);
  EXPECT_EQ(meta.shape_string(), "2x6x6");
  EXPECT_EQ(meta.num_classes, 3);
  EXPECT_EQ(meta.class_names, set.class_names);
  ASSERT_EQ(meta.mean.size(), 2u);

  Dataset data(dir.path("d.h5"), DataResidency::Memory, Normalization{{0, 0}, {1, 1}});
  std::vector<int64_t> all(37);
  std::iota(all.begin(), all.end(), 0);
  Batch b = data.get(all);
  auto expected = torch::from_blob(set.pixels.data(), {37, 2, 6, 6}, torch::kUInt8)
                      .to(torch::kFloat32)
                      .div(255.0);
  EXPECT_TRUE(torch::allclose(b.inputs, expected, 1e-6, 1e-6));
  for (int64_t i = 0; i < 37; ++i)
    EXPECT_EQ(b.targets[i].item<int64_t>(), set.labels[static_cast<size_t>(i)]);
  // The stored mean is the mean of pixel/255 per channel.
  EXPECT_NEAR(meta.mean[0], expected.select(1, 0).mean().item<double>(), 1e-6);
  EXPECT_NEAR(meta.std[1], expected.select(1, 1).std(/*unbiased=*/false).item<double>(), 1e-5);
}

TEST(Dataset, StreamedHyperslabReadsEqualInMemoryReads) {
  TempDir dir;
  std::string path = write_synthetic_dataset(dir, "d.h5", 200, 4, 8, 3);
  Dataset memory(path, DataResidency::Memory);
  Dataset stream(path, DataResidency::Stream);
  EXPECT_TRUE(memory.in_memory());
  EXPECT_FALSE(stream.in_memory());
  // Unsorted, with a duplicate: HDF5 returns selections in file order, so this checks the reorder.
  std::vector<int64_t> indices = {199, 3, 57, 3, 0, 120, 64};
  Batch a = memory.get(indices), b = stream.get(indices);
  EXPECT_TRUE(torch::equal(a.inputs, b.inputs));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  // Normalised with the file's own statistics: about zero mean overall.
  std::vector<int64_t> all(200);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_NEAR(memory.get(all).inputs.mean().item<double>(), 0.0, 1e-4);
}

// The general layout: /inputs of another number type (int16 here, read as float32 values), float
// /targets, streamed with hyperslabs as the image layout is.
TEST(Dataset, GeneralLayoutStreamsAndReadsOtherNumberTypes) {
  TempDir dir;
  const std::string path = dir.path("general.h5");
  std::vector<int16_t> inputs(50 * 2 * 3 * 4);
  for (size_t i = 0; i < inputs.size(); ++i)
    inputs[i] = static_cast<int16_t>(static_cast<int>(i % 1000) - 500);
  std::vector<float> targets(50 * 3);
  std::iota(targets.begin(), targets.end(), 0.5f);
  {
    h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    const hsize_t in_dims[4] = {50, 2, 3, 4};
    h5::Handle in_space(H5Screate_simple(4, in_dims, nullptr), H5Sclose);
    h5::Handle in_set(
        H5Dcreate2(file, "inputs", H5T_STD_I16LE, in_space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        H5Dclose);
    ASSERT_GE(H5Dwrite(in_set, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, inputs.data()), 0);
    h5::write_dataset(file, "targets", h5::Kind::F32, targets.data(), {50, 3});
    h5::write_attr(file, "format", "hetrain-dataset");
    h5::write_attr(file, "format_version", int64_t{1});
  }
  Dataset memory(path, DataResidency::Memory), stream(path, DataResidency::Stream);
  EXPECT_FALSE(stream.in_memory());
  EXPECT_TRUE(memory.meta().float_inputs);
  EXPECT_FALSE(memory.meta().class_labels());
  EXPECT_EQ(memory.meta().outputs(), 3);
  const std::vector<int64_t> indices = {49, 7, 7, 0};
  const Batch a = memory.get(indices), b = stream.get(indices);
  EXPECT_TRUE(torch::equal(a.inputs, b.inputs));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  // No mean/std attributes: float inputs are served as stored.
  EXPECT_EQ(a.inputs[0][1][2][3].item<float>(), inputs[49 * 24 + 1 * 12 + 2 * 4 + 3]);
  EXPECT_EQ(a.targets.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(a.targets[1][2].item<float>(), targets[7 * 3 + 2]);
}

TEST(DatasetFile, MalformedLayoutsAreRefusedWithTheirReason) {
  TempDir dir;
  struct Case {
    const char *name;
    h5::Kind kind;
    std::vector<hsize_t> image_dims, label_dims;
    std::vector<int32_t> labels;
    const char *phrase;
  };
  std::vector<Case> cases = {
      {"length_mismatch",
       h5::Kind::U8,
       {3, 1, 2, 2},
       {2},
       {0, 1},
       "3 samples in /images but 2 in /labels"},
      {"negative_label", h5::Kind::U8, {2, 1, 2, 2}, {2}, {0, -1}, "negative"},
      {"zero_samples", h5::Kind::U8, {0, 1, 2, 2}, {0}, {}, "zero samples"},
      {"float_images", h5::Kind::F64, {2, 1, 2, 2}, {2}, {0, 1}, "must be uint8"},
      {"three_dims", h5::Kind::U8, {2, 4, 4}, {2}, {0, 1}, "4 dimensions"},
  };
  for (const Case &c : cases) {
    std::string path = dir.path(std::string(c.name) + ".h5");
    write_raw_dataset(path, c.kind, c.image_dims, c.labels, /*with_labels=*/true, c.label_dims);
    try {
      read_dataset_meta(path);
      ADD_FAILURE() << c.name << " was accepted";
    } catch (const UserError &e) {
      EXPECT_NE(std::string(e.what()).find(c.phrase), std::string::npos)
          << c.name << ": " << e.what();
    }
  }
  // Labels beyond the class names.
  ImageSet set = synthetic_images(4, 2, 4, 1);
  write_dataset_file(dir.path("ok.h5"), set);
  {
    h5::Handle file(H5Fopen(dir.path("ok.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    h5::write_attr(file, "class_names", std::vector<std::string>{"only-one"});
  }
  EXPECT_THROW(read_dataset_meta(dir.path("ok.h5")), UserError);
  // Not HDF5 at all, and a truncated HDF5 file.
  write_bytes(dir.path("text.h5"), {'h', 'e', 'l', 'l', 'o'});
  EXPECT_THROW(read_dataset_meta(dir.path("text.h5")), UserError);
  write_dataset_file(dir.path("whole.h5"), synthetic_images(50, 2, 8, 1));
  std::filesystem::copy_file(dir.path("whole.h5"), dir.path("cut.h5"));
  std::filesystem::resize_file(dir.path("cut.h5"),
                               std::filesystem::file_size(dir.path("cut.h5")) / 2);
  EXPECT_THROW(Dataset(dir.path("cut.h5")), UserError);
}

TEST(EpochPermutation, IsADeterministicPermutationThatChangesPerEpoch) {
  auto p0 = epoch_permutation(42, 0, 1000);
  auto p0_again = epoch_permutation(42, 0, 1000);
  auto p1 = epoch_permutation(42, 1, 1000);
  auto other_seed = epoch_permutation(43, 0, 1000);
  EXPECT_EQ(p0, p0_again);
  EXPECT_NE(p0, p1);
  EXPECT_NE(p0, other_seed);
  std::vector<int64_t> sorted = p1;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  // Pinned values: the order must not change between builds, compilers or machines, or ranks
  // built differently would disagree about which samples form a round.
  EXPECT_EQ(epoch_permutation(1, 0, 10), (std::vector<int64_t>{8, 4, 1, 9, 5, 7, 3, 0, 6, 2}));
  EXPECT_EQ(epoch_permutation(7, 3, 1).at(0), 0);
}

} // namespace
