// Serves any list of sample indices as a normalised float batch. The whole file is held in memory
// when it fits (or when asked); otherwise each batch is read with HDF5 hyperslab selections. The
// targets (class labels or float values) are always in memory.
#pragma once

#include "hetrain/data/augment.h"
#include "hetrain/data/dataset_file.h"
#include "hetrain/data/residency.h"

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hetrain {

struct Normalization {
  std::vector<double> mean, std; // per channel, of pixel/255 (uint8) or of the values (float32)
};

// Which epoch's augmentation draws a batch gets (Dataset::get).
struct EpochDraw {
  uint64_t seed = 0;
  int64_t epoch = 0;
};

struct Batch {
  torch::Tensor inputs;  // float32 [n, C, H, W] (also for [H, W] samples: C = 1) or [n, F]
  torch::Tensor targets; // int64 [n] class labels, or float32 [n, ...]
};

class Dataset {
public:
  // normalization: the statistics to apply; empty means the file's own (training data). Test data
  // is normalised with the training set's statistics, so pass those.
  Dataset(const std::string &path, DataResidency residency = DataResidency::Auto,
          Normalization normalization = {});
  ~Dataset();
  Dataset(const Dataset &) = delete;
  Dataset &operator=(const Dataset &) = delete;

  const DatasetMeta &meta() const { return meta_; }
  int64_t size() const { return meta_.count; }
  bool in_memory() const { return !samples_.empty(); }
  const Normalization &normalization() const { return normalization_; }

  // With `draw`, the augmentation (set_augmentation) of each sample is drawn from (draw's seed
  // and epoch, the sample's index); without, samples come as stored (evaluation).
  Batch get(const int64_t *indices, int64_t count, const EpochDraw *draw = nullptr) const;
  Batch get(const std::vector<int64_t> &indices) const {
    return get(indices.data(), static_cast<int64_t>(indices.size()));
  }
  // --augment for the training set; UserError when the samples cannot take it.
  void set_augmentation(std::vector<AugmentOp> ops);
  bool augmented() const { return !augment_.empty(); }

private:
  void read_rows(const int64_t *indices, int64_t count, uint8_t *rows) const;
  void synthesize_rows(const int64_t *indices, int64_t count, uint8_t *rows) const;
  void normalize(float *sample, int64_t plane) const;
  torch::Tensor targets_of(const int64_t *indices, int64_t count) const;

  // Always in memory; filled while meta_ is read, so they are declared (constructed) first.
  std::vector<int64_t> labels_;      // class labels
  std::vector<float> float_targets_; // or float targets, meta_.target_elements() a sample
  DatasetMeta meta_;
  Normalization normalization_;
  std::vector<uint8_t> samples_; // the whole /images or /inputs, as stored, when in memory
  struct Hdf5State;
  std::unique_ptr<Hdf5State> stream_; // open file + dataset when streaming
  std::vector<float> mean_, inv_std_; // per channel
  std::optional<SyntheticSpec> synthetic_;
  std::vector<AugmentOp> augment_;
};

// The permutation of one epoch (DESIGN §4): a pure function of (seed, epoch, n), computed by every
// rank itself, independent of world size, compiler and standard library (own RNG + Fisher-Yates).
std::vector<int64_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t n);

} // namespace hetrain
