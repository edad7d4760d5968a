#include "hetrain/data/dataset_file.h"

#include "hetrain/common/atomic_file.h"
#include "hetrain/common/crash_guard.h"
#include "hetrain/common/error.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/common/splitmix.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

namespace hetrain {

std::string DatasetMeta::shape_string() const {
  return fmt::format("{}", fmt::join(sample_shape, "x"));
}

std::string DatasetMeta::describe_targets() const {
  if (class_labels())
    return fmt::format("{} classes", num_classes);
  return fmt::format("float targets of {}", fmt::join(target_shape, "x"));
}

int64_t DatasetMeta::target_elements() const {
  int64_t n = 1;
  for (int64_t d : target_shape)
    n *= d;
  return n;
}

namespace {

void validate_image_set(const ImageSet &set) {
  if (set.count <= 0)
    throw UserError("dataset has zero samples");
  if (set.channels <= 0 || set.height <= 0 || set.width <= 0)
    throw UserError(fmt::format("bad image shape {}x{}x{}", set.channels, set.height, set.width));
  if (static_cast<int64_t>(set.pixels.size()) != set.count * set.channels * set.height * set.width)
    throw UserError("image data does not match count x shape");
  if (static_cast<int64_t>(set.labels.size()) != set.count)
    throw UserError(fmt::format("{} images but {} labels", set.count, set.labels.size()));
  for (int32_t label : set.labels)
    if (label < 0 || label >= static_cast<int32_t>(set.class_names.size()))
      throw UserError(
          fmt::format("label {} is outside the {} class names", label, set.class_names.size()));
}

} // namespace

void write_dataset_file(const std::string &path, const ImageSet &set) {
  validate_image_set(set);
  // Per-channel statistics of pixel/255, accumulated in double (60k x 784 sums stay exact enough).
  const int64_t plane = set.height * set.width;
  std::vector<double> mean(static_cast<size_t>(set.channels), 0.0), std(mean.size(), 0.0);
  for (int64_t c = 0; c < set.channels; ++c) {
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < set.count; ++i) {
      const uint8_t *p = set.pixels.data() + (i * set.channels + c) * plane;
      for (int64_t j = 0; j < plane; ++j) {
        double v = p[j] / 255.0;
        sum += v;
        sum_sq += v * v;
      }
    }
    double n = static_cast<double>(set.count * plane);
    mean[c] = sum / n;
    std[c] = std::sqrt(std::max(sum_sq / n - mean[c] * mean[c], 1e-12));
  }

  AtomicOutputFile out(path);
  {
    h5::Handle file = h5::create_memory_file();
    h5::write_dataset(
        file, "images", h5::Kind::U8, set.pixels.data(),
        {hsize_t(set.count), hsize_t(set.channels), hsize_t(set.height), hsize_t(set.width)});
    h5::write_dataset(file, "labels", h5::Kind::I32, set.labels.data(), {hsize_t(set.count)});
    h5::write_attr(file, "format", "hetrain-dataset");
    h5::write_attr(file, "format_version", kDatasetFormatVersion);
    h5::write_attr(file, "class_names", set.class_names);
    h5::write_attr(file, "mean", mean);
    h5::write_attr(file, "std", std);
    h5::write_attr(file, "source", set.source);
    h5::write_file_image(file, out.temp_path(), path);
  }
  out.commit();
}

std::optional<SyntheticSpec> parse_synthetic(const std::string &source) {
  const std::string prefix = "synthetic:";
  if (source.rfind(prefix, 0) != 0)
    return std::nullopt;
  SyntheticSpec s;
  char x1 = 0, x2 = 0, colon1 = 0, colon2 = 0;
  std::istringstream in(source.substr(prefix.size()));
  if (!(in >> s.channels >> x1 >> s.height >> x2 >> s.width >> colon1 >> s.classes >> colon2 >>
        s.count) ||
      x1 != 'x' || x2 != 'x' || colon1 != ':' || colon2 != ':' || !in.eof())
    throw UserError(fmt::format("--synthetic {}: expected CxHxW:CLASSES:N, e.g. 3x32x32:10:50000",
                                source.substr(prefix.size())));
  if (s.channels <= 0 || s.height <= 0 || s.width <= 0 || s.classes < 2 || s.count <= 0 ||
      s.channels * s.height * s.width > (int64_t{1} << 26))
    throw UserError(fmt::format("--synthetic {}: needs positive sizes, at least 2 classes and at "
                                "least one sample",
                                source.substr(prefix.size())));
  return s;
}

DatasetMeta synthetic_meta(const SyntheticSpec &s, const std::string &source) {
  DatasetMeta meta;
  meta.path = source;
  meta.inputs_name = "synthetic";
  meta.count = s.count;
  meta.channels = s.channels;
  meta.height = s.height;
  meta.width = s.width;
  meta.sample_shape = {s.channels, s.height, s.width};
  meta.num_classes = s.classes;
  for (int64_t c = 0; c < s.classes; ++c)
    meta.class_names.push_back(std::to_string(c));
  meta.mean.assign(static_cast<size_t>(s.channels), 0.5);
  meta.std.assign(static_cast<size_t>(s.channels), 0.25);
  meta.source = "synthetic (generated from the sample index)";
  return meta;
}

int64_t synthetic_label(const SyntheticSpec &s, int64_t index) {
  const uint64_t z = mix64(static_cast<uint64_t>(index) * kGoldenGamma + 0x5eedULL);
  return static_cast<int64_t>(z % static_cast<uint64_t>(s.classes));
}

std::vector<int64_t> synthetic_labels(const SyntheticSpec &s) {
  std::vector<int64_t> labels(static_cast<size_t>(s.count));
  for (int64_t i = 0; i < s.count; ++i)
    labels[static_cast<size_t>(i)] = synthetic_label(s, i);
  return labels;
}

namespace {

// /images or /inputs: the samples' shape and type.
h5::DatasetShape read_inputs_layout(hid_t file, const std::string &path, DatasetMeta &meta) {
  meta.inputs_name = h5::exists(file, "inputs") ? "inputs" : "images";
  meta.targets_name = meta.inputs_name == "inputs" ? "targets" : "labels";
  h5::Handle inputs = h5::open_dataset(file, meta.inputs_name, path);
  h5::DatasetShape shape = h5::dataset_shape(inputs);
  const std::string where = fmt::format("{}: /{}", path, meta.inputs_name);
  if (meta.inputs_name == "images" && shape.dims.size() != 4)
    throw UserError(
        fmt::format("{} must have 4 dimensions [N,C,H,W], it has {}", where, shape.dims.size()));
  if (shape.dims.size() < 2 || shape.dims.size() > 4)
    throw UserError(fmt::format("{} must be [N, F], [N, H, W] or [N, C, H, W]; it has {} "
                                "dimensions",
                                where, shape.dims.size()));
  // uint8 is pixels (x/255 before normalisation); any other number type (int16, float16, float32,
  // ...) is read as float32 values as they are.
  const bool u8 = shape.type_class == H5T_INTEGER && shape.type_size == 1 && !shape.is_signed;
  const bool number = shape.type_class == H5T_INTEGER || shape.type_class == H5T_FLOAT;
  meta.float_inputs = !u8;
  if (!u8 && !(number && meta.inputs_name == "inputs"))
    throw UserError(fmt::format(
        meta.inputs_name == "images" ? "{} must be uint8" : "{} must hold numbers", where));
  meta.count = static_cast<int64_t>(shape.dims[0]);
  meta.sample_shape.assign(shape.dims.begin() + 1, shape.dims.end());
  const size_t rank = meta.sample_shape.size();
  meta.channels = rank == 3 ? meta.sample_shape[0] : 1;
  meta.height = rank >= 2 ? meta.sample_shape[rank - 2] : 1;
  meta.width = meta.sample_shape[rank - 1];
  if (meta.count == 0)
    throw UserError(fmt::format("{}: dataset has zero samples", path));
  for (int64_t d : meta.sample_shape)
    if (d == 0)
      throw UserError(fmt::format("{} has an empty dimension", where));
  return shape;
}

void read_class_labels(hid_t file, hid_t labels, const std::string &path, DatasetMeta &meta,
                       std::vector<int64_t> *labels_out) {
  if (h5::has_attr(file, "class_names"))
    meta.class_names = h5::read_attr_strings(file, "class_names");
  std::vector<int64_t> label_values(static_cast<size_t>(meta.count));
  h5::read_dataset(labels, h5::Kind::I64, label_values.data());
  auto [min_it, max_it] = std::minmax_element(label_values.begin(), label_values.end());
  if (*min_it < 0)
    throw UserError(fmt::format("{}: label {} is negative", path, *min_it));
  meta.num_classes =
      meta.class_names.empty() ? *max_it + 1 : static_cast<int64_t>(meta.class_names.size());
  if (*max_it >= meta.num_classes)
    throw UserError(fmt::format("{}: label {} is out of range for {} classes", path, *max_it,
                                meta.num_classes));
  if (labels_out != nullptr)
    *labels_out = std::move(label_values);
  if (meta.class_names.empty())
    for (int64_t c = 0; c < meta.num_classes; ++c)
      meta.class_names.push_back(std::to_string(c));
}

void read_float_targets(hid_t targets, const h5::DatasetShape &shape, const std::string &path,
                        DatasetMeta &meta, std::vector<float> *out) {
  meta.target_shape.assign(shape.dims.begin() + 1, shape.dims.end());
  if (meta.target_shape.empty())
    meta.target_shape = {1}; // [N] float targets: one value per sample
  std::vector<float> values(static_cast<size_t>(meta.count * meta.target_elements()));
  h5::read_dataset(targets, h5::Kind::F32, values.data());
  for (float v : values)
    if (!std::isfinite(v))
      throw UserError(fmt::format("{}: /targets holds a value that is not finite ({})", path, v));
  if (out != nullptr)
    *out = std::move(values);
}

void read_targets(hid_t file, const std::string &path, DatasetMeta &meta,
                  std::vector<int64_t> *labels_out, std::vector<float> *floats_out) {
  h5::Handle targets = h5::open_dataset(file, meta.targets_name, path);
  h5::DatasetShape shape = h5::dataset_shape(targets);
  const std::string where = fmt::format("{}: /{}", path, meta.targets_name);
  if (shape.dims.empty() || static_cast<int64_t>(shape.dims[0]) != meta.count)
    throw UserError(fmt::format("{}: {} samples in /{} but {} in /{}", path, meta.count,
                                meta.inputs_name, shape.dims.empty() ? 0 : shape.dims[0],
                                meta.targets_name));
  if (shape.type_class == H5T_INTEGER) {
    if (shape.dims.size() != 1)
      throw UserError(
          fmt::format("{} must be one-dimensional (one class label per sample)", where));
    read_class_labels(file, targets, path, meta, labels_out);
    return;
  }
  if (shape.type_class != H5T_FLOAT || meta.targets_name == "labels")
    throw UserError(fmt::format("{} must be integers{}", where,
                                meta.targets_name == "labels" ? "" : " (class labels) or float"));
  read_float_targets(targets, shape, path, meta, floats_out);
}

void read_normalisation(hid_t file, const std::string &path, DatasetMeta &meta) {
  if (h5::has_attr(file, "mean") && h5::has_attr(file, "std")) {
    meta.mean = h5::read_attr_doubles(file, "mean");
    meta.std = h5::read_attr_doubles(file, "std");
  } else {
    // uint8 without statistics: pixel/255 to about [-1, 1]; float32: as stored.
    const double mean = meta.float_inputs ? 0.0 : 0.5, std = meta.float_inputs ? 1.0 : 0.5;
    meta.mean.assign(static_cast<size_t>(meta.channels), mean);
    meta.std.assign(static_cast<size_t>(meta.channels), std);
  }
  if (static_cast<int64_t>(meta.mean.size()) != meta.channels ||
      static_cast<int64_t>(meta.std.size()) != meta.channels)
    throw UserError(fmt::format("{}: mean/std attributes must have one value per channel ({})",
                                path, meta.channels));
  for (double s : meta.std)
    if (!(s > 0))
      throw UserError(fmt::format("{}: std attribute must be positive", path));
}

DatasetMeta read_dataset_file_meta(hid_t file, const std::string &path,
                                   std::vector<int64_t> *labels_out,
                                   std::vector<float> *float_targets_out) {
  DatasetMeta meta;
  meta.path = path;
  try {
    read_inputs_layout(file, path, meta);
    read_targets(file, path, meta, labels_out, float_targets_out);
    read_normalisation(file, path, meta);
    if (h5::has_attr(file, "source"))
      meta.source = h5::read_attr_string(file, "source");
  } catch (const LibraryError &e) { // HDF5 could not read what the file says is there
    throw UserError(fmt::format("{}: unreadable dataset file ({})", path, e.what()));
  }
  return meta;
}

// A process reads one dataset's layout several times (the command, its role, the Dataset): the
// forked check runs once per version of the file (its size and modification time), and a version
// counts as checked only once its check passed.
using FileVersion = std::tuple<std::string, uintmax_t, int64_t>;
std::optional<FileVersion> file_version(const std::string &path) {
  namespace fs = std::filesystem;
  std::error_code size_error, time_error;
  const auto size = fs::file_size(path, size_error);
  const auto time = fs::last_write_time(path, time_error).time_since_epoch().count();
  if (size_error || time_error)
    return std::nullopt; // the read says what is wrong with the path
  return FileVersion{path, size, static_cast<int64_t>(time)};
}

std::mutex checked_mutex;
std::set<FileVersion> checked_versions;

void check_dataset_read_survives(const std::string &path) {
  const std::optional<FileVersion> version = file_version(path);
  if (version) {
    const std::lock_guard<std::mutex> lock(checked_mutex);
    if (checked_versions.count(*version) > 0)
      return;
  }
  check_read_survives(path, [&] {
    (void)read_dataset_file_meta(h5::open_file_readonly(path), path, nullptr, nullptr);
  });
  if (version) {
    const std::lock_guard<std::mutex> lock(checked_mutex);
    checked_versions.insert(*version);
  }
}

} // namespace

DatasetMeta read_dataset_meta(const std::string &path, std::vector<int64_t> *labels_out,
                              std::vector<float> *float_targets_out) {
  if (const auto synthetic = parse_synthetic(path)) {
    if (labels_out != nullptr)
      *labels_out = synthetic_labels(*synthetic);
    return synthetic_meta(*synthetic, path);
  }
  // First in a forked copy (common/crash_guard.h): HDF5 1.10 crashes on some damaged files.
  check_dataset_read_survives(path);
  return read_dataset_file_meta(h5::open_file_readonly(path), path, labels_out, float_targets_out);
}

DatasetMeta read_dataset_meta_image(const std::vector<uint8_t> &image, const std::string &name,
                                    std::vector<int64_t> *labels_out,
                                    std::vector<float> *float_targets_out) {
  check_read_survives(name, [&] {
    (void)read_dataset_file_meta(h5::open_file_image(image, name), name, nullptr, nullptr);
  });
  return read_dataset_file_meta(h5::open_file_image(image, name), name, labels_out,
                                float_targets_out);
}

} // namespace hetrain
