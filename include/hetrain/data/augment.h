// --augment: per-sample augmentation on the trainers, torchvision's names and rules. Each sample's
// random draw is a pure function of (seed, epoch, sample index) (SampleRng), so a sample is
// augmented the same way whichever trainer takes it, for any shares, and a resumed run continues
// exactly as an uninterrupted one.
//
//   crop[:PAD]          RandomCrop(image size, padding=PAD, fill 0); PAD default 4
//   flip                RandomHorizontalFlip(p=0.5)
//   resized-crop[:MIN]  RandomResizedCrop(image size, scale=(MIN, 1), ratio=(3/4, 4/3)), bilinear
//                       (align_corners=False); MIN default 0.08
//
// Applied in the order given, to the sample in its stored units (pixels 0..255 for uint8 files)
// before normalisation, so padding is black as in torchvision.
#pragma once

#include "hetrain/data/dataset_file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

struct AugmentOp {
  enum class Kind { kCrop, kFlip, kResizedCrop } kind;
  double param = 0; // crop: padding; resized-crop: the smallest area fraction
};

// "crop,flip" -> ops; "" -> none. UserError naming an unknown name or a bad parameter.
std::vector<AugmentOp> parse_augment(const std::string &text);
// UserError when the data's samples cannot take them (feature vectors, padding over half a side).
void check_augment(const std::vector<AugmentOp> &ops, const DatasetMeta &meta);

// The random stream of one sample (splitmix64; no std:: distributions, whose output differs
// between standard libraries).
class SampleRng {
public:
  SampleRng(uint64_t seed, int64_t epoch, int64_t index);
  double uniform();                        // [0, 1)
  int64_t integer(int64_t lo, int64_t hi); // [lo, hi], inclusive

private:
  uint64_t state_;
};

// Augments one sample [channels, height, width] in place; `scratch` is reused between calls.
void augment_sample(float *sample, int64_t channels, int64_t height, int64_t width,
                    const std::vector<AugmentOp> &ops, SampleRng &rng, std::vector<float> &scratch);

} // namespace hetrain
