#include "hetrain/data/dataset.h"

#include "hetrain/common/check.h"
#include "hetrain/common/error.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/common/splitmix.h"
#include "hetrain/common/system_info.h"
#include "hetrain/data/augment.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace hetrain {

struct Dataset::Hdf5State {
  h5::Handle file, samples;
};

Dataset::Dataset(const std::string &path, DataResidency residency, Normalization normalization)
    : meta_(read_dataset_meta(path, &labels_, &float_targets_)),
      normalization_(std::move(normalization)) {
  if (normalization_.mean.empty()) {
    normalization_.mean = meta_.mean;
    normalization_.std = meta_.std;
  }
  if (static_cast<int64_t>(normalization_.mean.size()) != meta_.channels ||
      static_cast<int64_t>(normalization_.std.size()) != meta_.channels)
    throw UserError(fmt::format("{}: has {} channels but the normalisation has {}", path,
                                meta_.channels, normalization_.mean.size()));

  for (double s : normalization_.std)
    inv_std_.push_back(static_cast<float>(1.0 / s));
  mean_.assign(normalization_.mean.begin(), normalization_.mean.end());
  synthetic_ = parse_synthetic(path);
  if (synthetic_)
    return; // generated in read_rows: nothing to open

  h5::Handle file = h5::open_file_readonly(path);
  const int64_t bytes = meta_.count * meta_.sample_bytes();
  // Auto keeps the samples in memory when they take at most a quarter of what is available, so
  // several ranks on one node can each hold a copy.
  bool keep = residency == DataResidency::Memory ||
              (residency == DataResidency::Auto && bytes <= meminfo_bytes("MemAvailable") / 4);
  h5::Handle samples = h5::open_dataset(file, meta_.inputs_name, path);
  if (keep) {
    samples_.resize(static_cast<size_t>(bytes));
    h5::read_dataset(samples, meta_.float_inputs ? h5::Kind::F32 : h5::Kind::U8, samples_.data());
  } else {
    stream_ = std::make_unique<Hdf5State>();
    stream_->file = std::move(file);
    stream_->samples = std::move(samples);
  }
}

void Dataset::set_augmentation(std::vector<AugmentOp> ops) {
  check_augment(ops, meta_);
  augment_ = std::move(ops);
}

void Dataset::synthesize_rows(const int64_t *indices, int64_t count, uint8_t *rows) const {
  // A stripe pattern whose frequency and phase depend on the class, plus per-sample noise.
  const int64_t c = meta_.channels, h = meta_.height, w = meta_.width;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t label = labels_[static_cast<size_t>(indices[i])];
    SampleRng rng(0x5eed, 0, indices[i]);
    uint8_t *row = rows + i * c * h * w;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t stripe = ((x * (label + 1) + y + ch * 3) / 2) % 2;
          row[(ch * h + y) * w + x] = static_cast<uint8_t>(64 + 128 * stripe + rng.integer(0, 63));
        }
  }
}

Dataset::~Dataset() = default;

void Dataset::read_rows(const int64_t *indices, int64_t count, uint8_t *rows) const {
  const int64_t row = meta_.sample_bytes();
  for (int64_t i = 0; i < count; ++i)
    if (indices[i] < 0 || indices[i] >= meta_.count)
      throw LibraryError(
          fmt::format("sample index {} outside dataset of {}", indices[i], meta_.count));
  if (synthetic_) {
    synthesize_rows(indices, count, rows);
    return;
  }
  if (in_memory()) {
    for (int64_t i = 0; i < count; ++i)
      std::copy_n(samples_.data() + indices[i] * row, row, rows + i * row);
    return;
  }
  // HDF5 returns a union of hyperslabs in file order and merges duplicates, so read the sorted
  // unique rows and scatter them back into the requested order.
  std::vector<int64_t> unique(indices, indices + count);
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  h5::Handle space(CHECK_HDF5(H5Dget_space(stream_->samples)), H5Sclose);
  CHECK_HDF5(H5Sselect_none(space));
  std::vector<hsize_t> block{1}, start(meta_.sample_shape.size() + 1, 0);
  for (int64_t d : meta_.sample_shape)
    block.push_back(static_cast<hsize_t>(d));
  for (int64_t index : unique) {
    start[0] = static_cast<hsize_t>(index);
    CHECK_HDF5(
        H5Sselect_hyperslab(space, H5S_SELECT_OR, start.data(), nullptr, block.data(), nullptr));
  }
  const hsize_t elements = hsize_t(unique.size()) * hsize_t(meta_.sample_elements());
  h5::Handle mem_space(CHECK_HDF5(H5Screate_simple(1, &elements, nullptr)), H5Sclose);
  std::vector<uint8_t> sorted(static_cast<size_t>(unique.size()) * static_cast<size_t>(row));
  CHECK_HDF5(H5Dread(stream_->samples, meta_.float_inputs ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8,
                     mem_space, space, H5P_DEFAULT, sorted.data()));
  for (int64_t i = 0; i < count; ++i) {
    auto at = std::lower_bound(unique.begin(), unique.end(), indices[i]) - unique.begin();
    std::copy_n(sorted.data() + at * row, row, rows + i * row);
  }
}

torch::Tensor Dataset::targets_of(const int64_t *indices, int64_t count) const {
  if (meta_.class_labels()) {
    auto labels = torch::empty({count}, torch::kInt64);
    int64_t *out = labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < count; ++i)
      out[i] = labels_[static_cast<size_t>(indices[i])];
    return labels;
  }
  const int64_t per = meta_.target_elements();
  std::vector<int64_t> shape{count};
  shape.insert(shape.end(), meta_.target_shape.begin(), meta_.target_shape.end());
  auto targets = torch::empty(shape, torch::kFloat32);
  float *out = targets.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i)
    std::copy_n(float_targets_.data() + indices[i] * per, per, out + i * per);
  return targets;
}

Batch Dataset::get(const int64_t *indices, int64_t count, const EpochDraw *draw) const {
  std::vector<int64_t> shape{count};
  if (meta_.sample_shape.size() == 1)
    shape.push_back(meta_.width); // features [n, F]
  else
    shape.insert(shape.end(), {meta_.channels, meta_.height, meta_.width});
  std::vector<uint8_t> rows(static_cast<size_t>(count * meta_.sample_bytes()));
  read_rows(indices, count, rows.data());
  auto inputs = torch::empty(shape, torch::kFloat32);
  // Plain loops, not tensor ops: this runs on the loader thread too, which must not start a
  // second team of OpenMP threads beside the compute thread's.
  const int64_t per = meta_.sample_elements(), plane = meta_.height * meta_.width;
  const bool augment = draw != nullptr && !augment_.empty();
  std::vector<float> scratch;
  float *out = inputs.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i) {
    float *x = out + i * per;
    if (meta_.float_inputs)
      std::copy_n(reinterpret_cast<const float *>(rows.data()) + i * per, per, x);
    else
      for (int64_t k = 0; k < per; ++k)
        x[k] = static_cast<float>(rows[static_cast<size_t>(i * per + k)]);
    if (augment) {
      SampleRng rng(draw->seed, draw->epoch, indices[i]);
      augment_sample(x, meta_.channels, meta_.height, meta_.width, augment_, rng, scratch);
    }
    normalize(x, plane);
  }
  return {inputs, targets_of(indices, count)};
}

void Dataset::normalize(float *x, int64_t plane) const {
  // (x/255 - mean) / std for pixels, (x - mean) / std for other inputs: the same float operations
  // in the same order as the tensor expression this replaced, so the values are unchanged.
  const float to_unit = meta_.float_inputs ? 1.0f : 1.0f / 255.0f;
  for (int64_t c = 0; c < meta_.channels; ++c) {
    const float mean = mean_[static_cast<size_t>(c)], inv_std = inv_std_[static_cast<size_t>(c)];
    float *p = x + c * plane;
    if (meta_.float_inputs)
      for (int64_t k = 0; k < plane; ++k)
        p[k] = (p[k] - mean) * inv_std;
    else
      for (int64_t k = 0; k < plane; ++k)
        p[k] = (p[k] * to_unit - mean) * inv_std;
  }
}

namespace {
// Unbiased integer in [0, bound) by rejection (Lemire's multiply-shift); no std:: distributions,
// whose output differs between standard libraries.
uint64_t bounded(uint64_t &state, uint64_t bound) {
  for (;;) {
    unsigned __int128 m = static_cast<unsigned __int128>(splitmix64(state)) * bound;
    auto low = static_cast<uint64_t>(m);
    if (low >= bound || low >= (0 - bound) % bound)
      return static_cast<uint64_t>(m >> 64);
  }
}
} // namespace

std::vector<int64_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  uint64_t state = seed * 0xd1342543de82ef95ULL + static_cast<uint64_t>(epoch) + 1;
  splitmix64(state);
  for (int64_t i = n - 1; i > 0; --i) {
    auto j = static_cast<int64_t>(bounded(state, static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

} // namespace hetrain
