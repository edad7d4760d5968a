// The dataset file format (DESIGN §8), in two spellings of one layout:
//   images:  /images  uint8 [N, C, H, W]  and  /labels  int32 [N]   (what the importers write)
//   general: /inputs  uint8 or float32 [N, ...]  (... = C,H,W or H,W or F features)
//            /targets any integer type [N] (class labels) or float32 [N, ...] (regression)
//   root attributes: format="hetrain-dataset", format_version, class_names (strings),
//   mean and std (per channel; of pixel/255 for uint8, of the values for float32; used for
//   normalisation; float32 inputs without them are not normalised), source.
#pragma once

#include "hetrain/data/image_set.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hetrain {

inline constexpr int64_t kDatasetFormatVersion = 1;

struct DatasetMeta {
  std::string path;
  std::string inputs_name = "images", targets_name = "labels"; // the datasets in the file
  int64_t count = 0, channels = 0, height = 0, width = 0; // a sample is [C, H, W] or [F] = 1x1xF
  std::vector<int64_t> sample_shape;                      // as stored: C,H,W or H,W or F
  bool float_inputs = false;                              // float32, else uint8
  std::vector<int64_t> target_shape; // float targets' per-sample shape; empty: class labels
  int64_t num_classes = 0;           // class labels only (0 with float targets)
  std::vector<std::string> class_names;
  std::vector<double> mean, std; // per channel, in units of pixel/255 (uint8) or values (float)
  std::string source;
  bool class_labels() const { return target_shape.empty(); }
  int64_t sample_elements() const { return channels * height * width; }
  int64_t sample_bytes() const { return sample_elements() * (float_inputs ? 4 : 1); }
  int64_t target_elements() const; // 1 for a class label
  // What a model outputs per sample: the class count, or the float target's size.
  int64_t outputs() const { return class_labels() ? num_classes : target_elements(); }
  std::string shape_string() const;     // "1x28x28"
  std::string describe_targets() const; // "10 classes" or "float targets of 2"
};

// --synthetic CxHxW:CLASSES:N (as the data source "synthetic:CxHxW:CLASSES:N"): N uint8 images
// generated from the sample index alone (a class pattern plus noise), no file, as Horovod's and
// tf_cnn_benchmarks' synthetic mode; labels are a hash of the index.
struct SyntheticSpec {
  int64_t channels = 0, height = 0, width = 0, classes = 0, count = 0;
};
// Nothing for a source that is not "synthetic:..."; UserError for a malformed one.
std::optional<SyntheticSpec> parse_synthetic(const std::string &source);
DatasetMeta synthetic_meta(const SyntheticSpec &spec, const std::string &source);
int64_t synthetic_label(const SyntheticSpec &spec, int64_t index);
std::vector<int64_t> synthetic_labels(const SyntheticSpec &spec);

// Computes per-channel mean/std, then writes the file atomically (temporary + rename).
void write_dataset_file(const std::string &path, const ImageSet &set);

// Reads and validates the layout and targets (lengths match, N > 0, labels in [0, classes), float
// targets finite). The targets have to be read to be validated; pass `labels` / `float_targets`
// to keep them instead of reading twice.
DatasetMeta read_dataset_meta(const std::string &path, std::vector<int64_t> *labels = nullptr,
                              std::vector<float> *float_targets = nullptr);
// The same from a file's bytes in memory (fuzz/fuzz_dataset.cpp); `name` is for messages.
DatasetMeta read_dataset_meta_image(const std::vector<uint8_t> &image, const std::string &name,
                                    std::vector<int64_t> *labels = nullptr,
                                    std::vector<float> *float_targets = nullptr);

} // namespace hetrain
