// The dataset file format (DESIGN §5):
//   /images  uint8 [N, C, H, W]
//   /labels  int32 [N]        (any HDF5 integer type is accepted when reading)
//   root attributes: format="hetrain-dataset", format_version, class_names (strings),
//   mean and std (per channel, of pixel/255, used for normalisation), source.
#pragma once

#include "hetrain/data/image_set.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

inline constexpr int64_t kDatasetFormatVersion = 1;

struct DatasetMeta {
  std::string path;
  int64_t count = 0, channels = 0, height = 0, width = 0;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> mean, std; // per channel, in units of pixel/255
  std::string source;
  int64_t image_bytes() const { return channels * height * width; }
  std::string shape_string() const; // "1x28x28"
};

// Computes per-channel mean/std, then writes the file atomically (temporary + rename).
void write_dataset_file(const std::string &path, const ImageSet &set);

// Reads and validates the layout and labels (lengths match, N > 0, labels in [0, classes)).
// The labels have to be read to be validated; pass `labels` to keep them instead of reading twice.
DatasetMeta read_dataset_meta(const std::string &path, std::vector<int64_t> *labels = nullptr);

} // namespace hetrain
