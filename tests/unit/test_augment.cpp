// --augment (data/augment.h): torchvision's rules on one sample, draws that depend on (seed,
// epoch, sample index) only, and so a batch's augmentation that does not depend on which other
// samples share the batch (the split independence the MPI tests rely on).
#include "hetrain/common/error.h"
#include "hetrain/data/augment.h"
#include "hetrain/data/dataset.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>

using namespace hetrain;
using namespace hetrain::testing;

namespace {

std::vector<float> ramp(int64_t c, int64_t h, int64_t w) {
  std::vector<float> x(static_cast<size_t>(c * h * w));
  std::iota(x.begin(), x.end(), 1.0f); // no zeros, so padding is recognisable
  return x;
}

TEST(Augment, ParsesTorchvisionNamesAndRefusesOthers) {
  auto ops = parse_augment("crop,flip,resized-crop:0.25");
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].kind, AugmentOp::Kind::kCrop);
  EXPECT_EQ(ops[0].param, 4);
  EXPECT_EQ(ops[1].kind, AugmentOp::Kind::kFlip);
  EXPECT_EQ(ops[2].kind, AugmentOp::Kind::kResizedCrop);
  EXPECT_EQ(ops[2].param, 0.25);
  EXPECT_TRUE(parse_augment("").empty());
  EXPECT_THROW(parse_augment("rotate"), UserError);
  EXPECT_THROW(parse_augment("crop:-1"), UserError);
  EXPECT_THROW(parse_augment("crop:x"), UserError);
  EXPECT_THROW(parse_augment("flip:2"), UserError);
  EXPECT_THROW(parse_augment("resized-crop:0"), UserError);
}

TEST(Augment, CropShiftsTheImageAndFillsWithZeros) {
  const int64_t c = 2, h = 6, w = 5, pad = 2;
  const std::vector<float> original = ramp(c, h, w);
  std::vector<float> scratch;
  int shifted = 0;
  for (int64_t index = 0; index < 50; ++index) {
    std::vector<float> x = original;
    SampleRng rng(1, 0, index);
    augment_sample(x.data(), c, h, w, {{AugmentOp::Kind::kCrop, double(pad)}}, rng, scratch);
    // Some shift (dy, dx) in [-pad, pad] explains every pixel.
    bool explained = false;
    for (int64_t dy = -pad; dy <= pad && !explained; ++dy)
      for (int64_t dx = -pad; dx <= pad && !explained; ++dx) {
        bool all = true;
        for (int64_t ch = 0; ch < c && all; ++ch)
          for (int64_t i = 0; i < h && all; ++i)
            for (int64_t j = 0; j < w && all; ++j) {
              const int64_t si = i + dy, sj = j + dx;
              const float want = si >= 0 && si < h && sj >= 0 && sj < w
                                     ? original[static_cast<size_t>((ch * h + si) * w + sj)]
                                     : 0.0f;
              all = x[static_cast<size_t>((ch * h + i) * w + j)] == want;
            }
        explained = all;
        shifted += all && (dy != 0 || dx != 0);
      }
    EXPECT_TRUE(explained) << "sample " << index;
  }
  EXPECT_GT(shifted, 30); // 24 of 25 shifts move the image
}

TEST(Augment, FlipMirrorsAboutHalfTheSamples) {
  const int64_t c = 1, h = 2, w = 4;
  const std::vector<float> original = ramp(c, h, w);
  std::vector<float> scratch;
  int flipped = 0;
  for (int64_t index = 0; index < 200; ++index) {
    std::vector<float> x = original;
    SampleRng rng(3, 1, index);
    augment_sample(x.data(), c, h, w, {{AugmentOp::Kind::kFlip, 0}}, rng, scratch);
    if (x == original)
      continue;
    ++flipped;
    EXPECT_EQ(x, (std::vector<float>{4, 3, 2, 1, 8, 7, 6, 5}));
  }
  EXPECT_GT(flipped, 70);
  EXPECT_LT(flipped, 130);
}

TEST(Augment, ResizedCropOfTheWholeSquareImageIsTheImage) {
  // Scale 1 on a square image: the box is the whole image (or the central crop, the same), and
  // bilinear sampling at the same size reads each pixel exactly.
  const std::vector<float> original = ramp(3, 7, 7);
  std::vector<float> x = original, scratch;
  SampleRng rng(5, 2, 11);
  augment_sample(x.data(), 3, 7, 7, {{AugmentOp::Kind::kResizedCrop, 1.0}}, rng, scratch);
  EXPECT_EQ(x, original);
  // A smaller scale zooms in: values stay within the image's range and the image changes.
  x = original;
  SampleRng rng2(5, 2, 12);
  augment_sample(x.data(), 3, 7, 7, {{AugmentOp::Kind::kResizedCrop, 0.08}}, rng2, scratch);
  EXPECT_NE(x, original);
  for (float v : x) {
    EXPECT_GE(v, 1.0f);
    EXPECT_LE(v, static_cast<float>(original.size()));
  }
}

TEST(Augment, DrawsDependOnSeedEpochAndIndexOnly) {
  SampleRng a(7, 3, 42), b(7, 3, 42), other_epoch(7, 4, 42), other_index(7, 3, 43);
  const double first = a.uniform();
  EXPECT_EQ(first, b.uniform());
  EXPECT_NE(first, other_epoch.uniform());
  EXPECT_NE(first, other_index.uniform());
  for (int i = 0; i < 1000; ++i) {
    const int64_t v = a.integer(-2, 2);
    EXPECT_GE(v, -2);
    EXPECT_LE(v, 2);
  }
}

TEST(Augment, ASampleIsAugmentedTheSameInAnyBatch) {
  TempDir dir;
  Dataset data(write_synthetic_dataset(dir, "d.h5", 16, 4, 8, 1));
  data.set_augmentation(parse_augment("crop:2,flip,resized-crop"));
  const EpochDraw draw{9, 1};
  const std::vector<int64_t> batch{3, 7, 11}, alone{7};
  const Batch in_batch = data.get(batch.data(), 3, &draw);
  const Batch by_itself = data.get(alone.data(), 1, &draw);
  EXPECT_TRUE(in_batch.inputs[1].equal(by_itself.inputs[0]));
  // The augmentation is on, and evaluation (no draw) sees the sample as stored.
  const Batch plain = data.get(alone);
  EXPECT_FALSE(plain.inputs[0].equal(by_itself.inputs[0]));
  const EpochDraw next_epoch{9, 2};
  EXPECT_FALSE(data.get(alone.data(), 1, &next_epoch).inputs[0].equal(by_itself.inputs[0]));
}

TEST(Augment, FeatureVectorsAndOversizedPaddingAreRefused) {
  DatasetMeta features;
  features.sample_shape = {8};
  features.height = 1;
  features.width = 8;
  EXPECT_THROW(check_augment(parse_augment("flip"), features), UserError);
  DatasetMeta image;
  image.sample_shape = {1, 8, 8};
  image.height = image.width = 8;
  EXPECT_NO_THROW(check_augment(parse_augment("crop:4"), image));
  EXPECT_THROW(check_augment(parse_augment("crop:5"), image), UserError);
}

TEST(Synthetic, SamplesDependOnTheIndexOnly) {
  Dataset data("synthetic:3x8x8:5:100");
  EXPECT_EQ(data.size(), 100);
  EXPECT_EQ(data.meta().num_classes, 5);
  const std::vector<int64_t> a{4, 9}, b{9};
  EXPECT_TRUE(data.get(a).inputs[1].equal(data.get(b).inputs[0]));
  EXPECT_EQ(data.get(a).targets[1].item<int64_t>(), data.get(b).targets[0].item<int64_t>());
  EXPECT_THROW(Dataset("synthetic:3x8:5:100"), UserError);
  EXPECT_THROW(Dataset("synthetic:3x8x8:1:100"), UserError);
}

} // namespace
